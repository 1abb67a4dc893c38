//! Follows the frame boundaries of an HTTP/2 (prior knowledge) connection, far enough to tell
//! whether a request head is arriving, so the guard can time it as it times HTTP/1 heads.
//!
//! Nothing is checked here: h2 validates the frames. This only reads each 9-byte frame header
//! (RFC 9113 §4.1) and counts the payload bytes that follow. A head is "arriving" while a
//! frame header is incomplete, while a frame other than DATA is incomplete (a slowly trickled
//! HEADERS, CONTINUATION or any other control frame), and from a HEADERS frame until the frame
//! that carries END_HEADERS is complete. DATA is a request body, which the body deadlines
//! already time.

/// The bytes of the connection preface after its first line (`PRI * HTTP/2.0\r\n`).
const PREFACE_REST: usize = b"\r\nSM\r\n\r\n".len();
const FRAME_HEADER: usize = 9;
const TYPE_DATA: u8 = 0x0;
const TYPE_HEADERS: u8 = 0x1;
const TYPE_CONTINUATION: u8 = 0x9;
const FLAG_END_HEADERS: u8 = 0x4;

/// Where an HTTP/2 connection's client-to-proxy stream is.
#[derive(Debug, Clone)]
pub(crate) struct H2Frames {
    /// Preface bytes still to skip.
    preface_left: usize,
    /// The frame header being read, and how much of it is here.
    header: [u8; FRAME_HEADER],
    header_len: usize,
    /// The current frame's type and payload bytes still to come (0 between frames).
    frame_type: u8,
    payload_left: u32,
    /// Whether the current frame ends a header block once its payload is in.
    ends_block: bool,
    /// A header block (HEADERS, then CONTINUATIONs) is open.
    in_block: bool,
}

impl H2Frames {
    /// Frames that follow the preface's first line (which the HTTP/1 scanner already read).
    pub(crate) fn after_preface_line() -> Self {
        Self {
            preface_left: PREFACE_REST,
            header: [0; FRAME_HEADER],
            header_len: 0,
            frame_type: TYPE_DATA,
            payload_left: 0,
            ends_block: false,
            in_block: false,
        }
    }

    /// Whether part of a request head (or of a control frame) has arrived and the rest has not.
    pub(crate) fn head_arriving(&self) -> bool {
        self.in_block || self.header_len > 0 || (self.payload_left > 0 && self.frame_type != TYPE_DATA)
    }

    /// Follows the next `bytes` of the stream.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) {
        let skip = self.preface_left.min(bytes.len());
        self.preface_left -= skip;
        bytes = &bytes[skip..];
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let take = bytes.len().min(self.payload_left as usize);
                // `take` is at most `payload_left`, a u32.
                self.payload_left -= take as u32;
                bytes = &bytes[take..];
                if self.payload_left == 0 {
                    self.frame_done();
                }
                continue;
            }
            let take = bytes.len().min(FRAME_HEADER - self.header_len);
            self.header[self.header_len..self.header_len + take].copy_from_slice(&bytes[..take]);
            self.header_len += take;
            bytes = &bytes[take..];
            if self.header_len == FRAME_HEADER {
                self.header_len = 0;
                self.start_frame();
            }
        }
    }

    fn start_frame(&mut self) {
        let [l0, l1, l2, frame_type, flags, ..] = self.header;
        self.frame_type = frame_type;
        self.payload_left = u32::from_be_bytes([0, l0, l1, l2]);
        self.ends_block = false;
        match frame_type {
            TYPE_HEADERS | TYPE_CONTINUATION => {
                self.in_block = true;
                self.ends_block = flags & FLAG_END_HEADERS != 0;
            }
            _ => {}
        }
        if self.payload_left == 0 {
            self.frame_done();
        }
    }

    fn frame_done(&mut self) {
        if self.ends_block {
            self.in_block = false;
            self.ends_block = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: u32, frame_type: u8, flags: u8) -> Vec<u8> {
        let l = len.to_be_bytes();
        let mut f = vec![l[1], l[2], l[3], frame_type, flags, 0, 0, 0, 1];
        f.extend(std::iter::repeat_n(0u8, len as usize));
        f
    }

    fn after_preface() -> H2Frames {
        let mut h = H2Frames::after_preface_line();
        h.feed(b"\r\nSM\r\n\r\n");
        h
    }

    #[test]
    fn complete_frames_leave_nothing_arriving() {
        let mut h = after_preface();
        h.feed(&frame(0, 0x4, 0)); // SETTINGS
        h.feed(&frame(8, 0x6, 0)); // PING
        h.feed(&frame(20, TYPE_HEADERS, FLAG_END_HEADERS));
        h.feed(&frame(100, TYPE_DATA, 0));
        assert!(!h.head_arriving());
    }

    #[test]
    fn a_headers_frame_is_arriving_until_its_last_byte() {
        let mut h = after_preface();
        let f = frame(30, TYPE_HEADERS, FLAG_END_HEADERS);
        for (i, b) in f.iter().enumerate() {
            h.feed(std::slice::from_ref(b));
            assert_eq!(h.head_arriving(), i + 1 < f.len(), "after byte {i}");
        }
    }

    #[test]
    fn a_header_block_stays_open_until_end_headers() {
        let mut h = after_preface();
        h.feed(&frame(10, TYPE_HEADERS, 0));
        assert!(h.head_arriving());
        h.feed(&frame(10, TYPE_CONTINUATION, 0));
        assert!(h.head_arriving());
        h.feed(&frame(10, TYPE_CONTINUATION, FLAG_END_HEADERS));
        assert!(!h.head_arriving());
    }

    #[test]
    fn a_partial_data_frame_is_body_not_head() {
        let mut h = after_preface();
        let f = frame(100, TYPE_DATA, 0);
        h.feed(&f[..50]);
        assert!(!h.head_arriving());
    }

    #[test]
    fn preface_and_frames_split_anywhere_are_followed() {
        let mut stream = b"\r\nSM\r\n\r\n".to_vec();
        stream.extend(frame(6, 0x4, 0));
        stream.extend(frame(7, TYPE_HEADERS, FLAG_END_HEADERS));
        for split in 0..stream.len() {
            let mut h = H2Frames::after_preface_line();
            h.feed(&stream[..split]);
            h.feed(&stream[split..]);
            assert!(!h.head_arriving(), "split at {split}");
        }
        let mut h = H2Frames::after_preface_line();
        h.feed(&stream[..stream.len() - 1]);
        assert!(h.head_arriving());
    }
}
