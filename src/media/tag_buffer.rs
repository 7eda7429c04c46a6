//! A GStreamer buffer holding one whole FLV tag (what flvmux hands an appsink) as the `Bytes`
//! the hub and its readers share, without copying it where GStreamer allows: the buffer's
//! own memory is mapped and owned by the `Bytes`. A leaf of the two producers.

use bytes::Bytes;
use gstreamer as gst;

/// The tag as it is: its memory mapped, not copied (a buffer made of several pieces is
/// joined once).
pub(crate) fn tag_bytes(buffer: gst::Buffer) -> Option<Bytes> {
    buffer
        .into_mapped_buffer_readable()
        .ok()
        .map(Bytes::from_owner)
}

/// The tag after `edit` (a timestamp rewritten, say): in place when this is the buffer's
/// only holder and its memory may be written, else edited in one copy. `edit`'s answer
/// comes with it.
pub(crate) fn edited_tag_bytes<R>(
    buffer: gst::Buffer,
    edit: impl FnOnce(&mut [u8]) -> R,
) -> Option<(Bytes, R)> {
    match buffer.into_mapped_buffer_writable() {
        Ok(mut mapped) => {
            let said = edit(mapped.as_mut_slice());
            Some((Bytes::from_owner(mapped), said))
        }
        Err(buffer) => {
            let mut copy = vec![0; buffer.size()];
            buffer.copy_to_slice(0, &mut copy).ok()?;
            let said = edit(&mut copy);
            Some((Bytes::from(copy), said))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sole_buffer_is_edited_in_place_and_a_shared_one_in_a_copy() {
        crate::media::init().unwrap();
        let buffer = gst::Buffer::from_mut_slice(vec![1u8, 2, 3, 4]);
        let address = buffer.map_readable().unwrap().as_ptr();
        let (bytes, said) = edited_tag_bytes(buffer, |b| {
            b[0] = 9;
            b.len()
        })
        .unwrap();
        assert_eq!((&bytes[..], said), (&[9u8, 2, 3, 4][..], 4));
        assert_eq!(
            bytes.as_ptr(),
            address,
            "the buffer's own memory, not a copy"
        );
        // Someone else holds the buffer: its bytes stay as they were.
        let buffer = gst::Buffer::from_mut_slice(vec![1u8, 2, 3, 4]);
        let kept = buffer.clone();
        let (bytes, ()) = edited_tag_bytes(buffer, |b| b[0] = 9).unwrap();
        assert_eq!(&bytes[..], &[9u8, 2, 3, 4]);
        assert_eq!(&kept.map_readable().unwrap()[..], &[1u8, 2, 3, 4]);
        let read = gst::Buffer::from_mut_slice(vec![5u8; 3]);
        let address = read.map_readable().unwrap().as_ptr();
        assert_eq!(tag_bytes(read).unwrap().as_ptr(), address);
    }
}
