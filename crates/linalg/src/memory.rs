//! Large buffers backed by transparent huge pages where the operating system offers them.
//!
//! A training run reads its 157 MB input matrix at random columns and writes 20 MB layer
//! caches; with 4 KiB pages every column of a mini-batch gather is a TLB miss, and on this
//! project's VM every first touch of a page costs a fault of ≈ 2 µs (8 ms per 20 MB buffer,
//! measured). Linux lets a process ask for 2 MiB pages on a range (`madvise(MADV_HUGEPAGE)`,
//! honoured when `/sys/kernel/mm/transparent_hugepage/enabled` is `always` or `madvise`).
//! The advice changes nothing but speed; elsewhere it is not given. Also here: [`set_shape`],
//! which reshapes a buffer without giving its memory back.

use crate::Mat;

/// Buffers smaller than this are not worth advising (a huge page is 2 MiB).
const MIN_BYTES: usize = 4 << 20;

/// An empty vector with capacity for `len` values, its memory advised to be backed by huge
/// pages **before** anything touches it (fill it with `extend` or `resize`).
pub fn huge_page_vec<T>(len: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(len);
    advise_huge_pages(v.as_mut_ptr() as *mut u8, len * std::mem::size_of::<T>());
    v
}

/// A `rows × cols` matrix of zeros in huge-page-backed memory ([`huge_page_vec`]).
pub fn huge_page_zeros(rows: usize, cols: usize) -> Mat {
    let mut v = huge_page_vec(rows * cols);
    v.resize(rows * cols, 0.0f32);
    Mat::from_vec(rows, cols, v)
}

/// Gives `m` the shape `rows × cols`, reusing its allocation when it is large enough (an
/// epoch's short last batch and the next full one then allocate nothing). The contents are
/// unspecified afterwards: the caller overwrites every entry. The one place the workspace's
/// batch-shaped buffers change shape (the tape's nodes, the batch gather, a network's layer
/// buffers, the cosine goodness's scratch).
pub fn set_shape(m: &mut Mat, rows: usize, cols: usize) {
    if m.shape() == (rows, cols) {
        return;
    }
    let mut data: Vec<f32> = std::mem::replace(m, Mat::zeros(0, 0)).data.into();
    data.resize(rows * cols, 0.0);
    *m = Mat::from_vec(rows, cols, data);
}

#[cfg(target_os = "linux")]
fn advise_huge_pages(ptr: *mut u8, bytes: usize) {
    const PAGE: usize = 4096;
    if bytes < MIN_BYTES {
        return;
    }
    let start = (ptr as usize).next_multiple_of(PAGE);
    let end = (ptr as usize + bytes) & !(PAGE - 1);
    if end > start {
        // SAFETY: [start, end) lies inside the vector's allocation; MADV_HUGEPAGE changes how
        // the kernel backs the range, never its contents or validity. A failure (e.g. a
        // kernel without transparent huge pages) leaves ordinary pages, so it is ignored.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_ptr: *mut u8, _bytes: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_page_buffers_are_ordinary_buffers() {
        let v: Vec<u8> = huge_page_vec(10 << 20);
        assert!(v.is_empty() && v.capacity() >= 10 << 20);
        let m = huge_page_zeros(1000, 2000);
        assert_eq!(m.shape(), (1000, 2000));
        assert!(m.iter().all(|&x| x == 0.0));
        let small = huge_page_zeros(3, 2);
        assert_eq!(small, Mat::zeros(3, 2));
    }

    #[test]
    fn set_shape_keeps_the_allocation_for_a_smaller_or_equal_size() {
        let mut m = Mat::from_element(4, 256, 1.0);
        let ptr = m.as_slice().as_ptr();
        set_shape(&mut m, 4, 80);
        assert_eq!(m.shape(), (4, 80));
        assert_eq!(m.as_slice().as_ptr(), ptr, "shrinking must not reallocate");
        set_shape(&mut m, 4, 256);
        assert_eq!(m.shape(), (4, 256));
        assert_eq!(
            m.as_slice().as_ptr(),
            ptr,
            "growing back within the capacity must not reallocate"
        );
        set_shape(&mut m, 8, 256);
        assert_eq!((m.shape(), m.len()), ((8, 256), 2048));
    }
}
