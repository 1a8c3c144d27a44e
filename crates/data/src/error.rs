//! The one error type of insitu-data. Every variant names the file it concerns (as the path
//! relative to the datasets directory where there is one, e.g. `mnist/train-images-idx3-ubyte.gz`)
//! and, for malformed contents, the byte offset or the 1-based line where parsing stopped.

use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong while locating, verifying, parsing or splitting a data set.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// A file could not be written (or replaced, or removed).
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// A checkpoint file exists but cannot be resumed from: truncated, corrupt, of another
    /// encoding, or saved by a different run.
    #[error("checkpoint {} is unusable: {reason} (delete it to start the run over)", path.display())]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A `.npy` array this crate cannot read (another dtype or order, a damaged header,
    /// truncated data).
    #[error("{file}: {reason}")]
    Npy {
        /// The file.
        file: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A data set file is absent from the datasets directory.
    #[error("{file} not found in {} (run `cargo xtask datasets` to fetch it)", dir.display())]
    Missing {
        /// The file, relative to `dir`.
        file: String,
        /// The datasets directory that was searched.
        dir: PathBuf,
    },

    /// The file's SHA-256 differs from the one its manifest pins.
    #[error("checksum mismatch for {file}: expected {expected}, found {found}")]
    ChecksumMismatch {
        /// The file.
        file: String,
        /// The digest the manifest lists (lower-case hex).
        expected: String,
        /// The digest of the file's bytes (lower-case hex).
        found: String,
    },

    /// A manifest is present but does not list the file being loaded.
    #[error("{file} is not listed in the manifest {}", manifest.display())]
    NotInManifest {
        /// The file.
        file: String,
        /// The manifest that was consulted.
        manifest: PathBuf,
    },

    /// A `SHA256SUMS` line is not `<64 hex digits>  <relative path>`.
    #[error("{file}, line {line}: {reason}")]
    ManifestSyntax {
        /// The manifest.
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },

    /// The gzip stream is corrupt (bad header, bad deflate data, CRC or length mismatch, truncated).
    #[error("{file}: bad gzip data near compressed byte offset {offset}: {reason}")]
    Gzip {
        /// The file.
        file: String,
        /// How many compressed bytes had been consumed when decoding failed.
        offset: u64,
        /// The decoder's message.
        reason: String,
    },

    /// An IDX file does not start with the expected magic number.
    #[error("{file}: wrong IDX magic number at byte offset 0: expected {expected:#010x}, found {found:#010x}")]
    BadMagic {
        /// The file.
        file: String,
        /// The magic number this loader requires (`0x00000803` images, `0x00000801` labels).
        expected: u32,
        /// The first four bytes, big-endian.
        found: u32,
    },

    /// An IDX file ends before the data its header announces.
    #[error("{file}: truncated at byte offset {offset}: {what} needs {needed} bytes, only {available} present")]
    Truncated {
        /// The file.
        file: String,
        /// Byte offset (in the decompressed data) where the missing part starts.
        offset: u64,
        /// What was being read (header, pixels, labels).
        what: &'static str,
        /// Bytes needed from `offset`.
        needed: u64,
        /// Bytes actually present from `offset`.
        available: u64,
    },

    /// An IDX file has bytes after the data its header announces.
    #[error("{file}: {extra} unexpected trailing bytes from byte offset {offset}")]
    TrailingBytes {
        /// The file.
        file: String,
        /// Offset of the first byte beyond the announced data.
        offset: u64,
        /// How many bytes follow.
        extra: u64,
    },

    /// An IDX header is well formed but describes something this loader cannot use
    /// (e.g. images that are not 28×28, a dimension of zero pixels).
    #[error("{file}: unsupported IDX header at byte offset {offset}: {reason}")]
    BadHeader {
        /// The file.
        file: String,
        /// Offset of the offending header field.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },

    /// A label is not a valid class index.
    #[error("{file}: label {value} at byte offset {offset} is not below the number of classes {num_classes}")]
    LabelOutOfRange {
        /// The file.
        file: String,
        /// Offset of the label in the decompressed data.
        offset: u64,
        /// The label value.
        value: u32,
        /// The number of classes.
        num_classes: usize,
    },

    /// The image and label files of one split hold different numbers of samples.
    #[error("{images} holds {n_images} images but {labels} holds {n_labels} labels")]
    CountMismatch {
        /// The images file.
        images: String,
        /// Number of images.
        n_images: usize,
        /// The labels file.
        labels: String,
        /// Number of labels.
        n_labels: usize,
    },

    /// A CSV line has the wrong number of comma-separated fields.
    #[error("{file}, line {line}: expected {expected} comma-separated fields, found {found}")]
    FieldCount {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// Fields required.
        expected: usize,
        /// Fields present.
        found: usize,
    },

    /// A CSV field that must be a number (or a class index) is not one.
    #[error("{file}, line {line}, field {field}: {text:?} is not {expected}")]
    BadField {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// 1-based field number.
        field: usize,
        /// The field's text.
        text: String,
        /// What the field should have been.
        expected: &'static str,
    },

    /// An Iris row names a species other than setosa, versicolor and virginica.
    #[error("{file}, line {line}: unknown species {name:?} (expected one of {valid})")]
    UnknownSpecies {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// The name found.
        name: String,
        /// The accepted names.
        valid: &'static str,
    },

    /// A text file (CSV, manifest) is not valid UTF-8.
    #[error("{file}, line {line}: not valid UTF-8")]
    NotUtf8 {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
    },

    /// A file holds a different number of samples than it declares or than the data set has.
    #[error("{file}: expected {expected} samples, found {found}")]
    SampleCount {
        /// The file.
        file: String,
        /// Samples required.
        expected: usize,
        /// Samples present.
        found: usize,
    },

    /// A task name that is not one of [`crate::Task::all`].
    #[error("unknown task {name:?}; valid names: {valid}")]
    UnknownTask {
        /// The name given.
        name: String,
        /// The valid names, comma-separated.
        valid: String,
    },

    /// An argument outside its valid range (a class list with duplicates, a split larger than
    /// the data set, class filtering on a regression set, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}
