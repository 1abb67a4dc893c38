//! Header lines kept as they arrived: a parsed head's bytes and where each line sits in them,
//! read in place until something needs a `HeaderMap`. Building a map of a usual head costs
//! more than the rest of parsing it, and most heads cross the proxy without one: a member's
//! answer to an HTTP/1 client, a plain client request to a member.
//!
//! [`HeaderView`] reads either form the same way, so a rule that only reads headers (the
//! strict checks, sticky routes, request keys, the access log) is written once for both.
//!
//! Where the lines sit is a small `Vec` per head, two per proxied request (the client's
//! request, the member's answer). Each thread keeps a few of them between heads (see
//! [`crate::spare`]): a head takes one and its [`HeaderLines`] gives it back when dropped, so
//! neither head allocates (about 130 instructions each). Bounded: at most [`KEPT_PLACES`]
//! per thread, none with room for more than [`LARGEST_KEPT_PLACES`] lines.

use std::cell::RefCell;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::ascii::eq_ignore_case;
use crate::spare;

/// Name offset, name length, value offset, value length of one line, into its head.
pub(crate) type Place = [u32; 4];

/// Vectors of places kept per thread.
const KEPT_PLACES: usize = 16;
/// Vectors with room for more lines than this are not kept.
const LARGEST_KEPT_PLACES: usize = 64;

thread_local! {
    static SPARE_PLACES: RefCell<Vec<Vec<Place>>> = const { RefCell::new(Vec::new()) };
}

/// An empty vector of places with room for `lines`: one of this thread's spares, or a new one.
pub(crate) fn places(lines: usize) -> Vec<Place> {
    spare::take(&SPARE_PLACES, lines)
}

/// A head's header lines in the sender's order and spelling.
#[derive(Debug, Clone)]
pub struct HeaderLines {
    head: Bytes,
    /// Where each line sits in `head`; given back to the thread's spares when dropped.
    lines: Vec<Place>,
}

impl Drop for HeaderLines {
    fn drop(&mut self) {
        spare::keep(&SPARE_PLACES, std::mem::take(&mut self.lines), KEPT_PLACES, LARGEST_KEPT_PLACES);
    }
}

impl HeaderLines {
    /// Lines at the given places of `head`. Every name must already be a valid header name
    /// and every value a valid header value (httparse checks both, by the rules `HeaderName`
    /// and `HeaderValue` apply), and every place within `head`.
    pub(crate) fn new(head: Bytes, lines: Vec<Place>) -> Self {
        debug_assert!(lines.iter().all(|&[n, nl, v, vl]| {
            let within = |at: u32, len: u32| at.checked_add(len).is_some_and(|end| end as usize <= head.len());
            within(n, nl) && within(v, vl)
        }));
        Self { head, lines }
    }

    /// The lines, name and value.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.lines.iter().map(|&[n, nl, v, vl]| (&self.head[n as usize..(n + nl) as usize], &self.head[v as usize..(v + vl) as usize]))
    }

    /// Appends the lines `keep` accepts (given each name and value) to `out`, each ended by
    /// CRLF and spelled as the sender spelled it, from the name through the value (whitespace
    /// after a value is left out). Kept lines that sat next to each other in the head go out
    /// in one copy: writing each line's four pieces cost more than the rest of writing the
    /// head.
    pub fn write_where(&self, out: &mut Vec<u8>, mut keep: impl FnMut(&[u8], &[u8]) -> bool) {
        let head = &self.head[..];
        // The run of adjacent kept lines not yet written: where it starts and ends.
        let mut run: Option<(usize, usize)> = None;
        for &[n, nl, v, vl] in &self.lines {
            let (name, value) = (&head[n as usize..(n + nl) as usize], &head[v as usize..(v + vl) as usize]);
            if !keep(name, value) {
                continue;
            }
            // An empty value may sit anywhere after the colon: the line runs at least to it.
            let (start, end) = (n as usize, (v + vl).max(n + nl + 1) as usize);
            run = match run {
                Some((from, to)) if to + 2 == start && &head[to..start] == b"\r\n" => Some((from, end)),
                Some((from, to)) => {
                    out.extend_from_slice(&head[from..to]);
                    out.extend_from_slice(b"\r\n");
                    Some((start, end))
                }
                None => Some((start, end)),
            };
        }
        if let Some((from, to)) = run {
            out.extend_from_slice(&head[from..to]);
            out.extend_from_slice(b"\r\n");
        }
    }

    /// How many lines there are.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether there is no line.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The values of header `name` (any spelling), in order.
    #[inline]
    pub fn get_all<'a>(&'a self, name: &'a HeaderName) -> LineValues<'a> {
        LineValues { head: &self.head, lines: self.lines.iter(), name: name.as_str().as_bytes() }
    }

    /// The first value of header `name` as a `HeaderValue` sharing the head's bytes.
    pub fn value(&self, name: &HeaderName) -> Option<HeaderValue> {
        let name = name.as_str().as_bytes();
        let &[_, _, v, vl] = self.lines.iter().find(|&&[n, nl, _, _]| nl as usize == name.len() && eq_ignore_case(&self.head[n as usize..(n + nl) as usize], name))?;
        HeaderValue::from_maybe_shared(self.head.slice(v as usize..(v + vl) as usize)).ok()
    }

    /// The lines as a map.
    pub fn into_map(self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.lines.len());
        for &[n, nl, v, vl] in &self.lines {
            let (n, v) = (n as usize, v as usize);
            // Checked when the head was parsed (see `new`): neither can fail.
            if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(&self.head[n..n + nl as usize]), HeaderValue::from_maybe_shared(self.head.slice(v..v + vl as usize))) {
                map.append(name, value);
            }
        }
        map
    }
}

/// A head's header fields as a map or as kept lines, read the same way. Names compare in
/// any spelling; a map's are lower case, kept lines keep the sender's.
#[derive(Debug, Clone, Copy)]
pub enum HeaderView<'a> {
    /// Fields in a map (hyper's requests, HTTP/2, or lines a rule needed as a map).
    Map(&'a HeaderMap),
    /// Lines as they arrived.
    Lines(&'a HeaderLines),
}

impl<'a> HeaderView<'a> {
    /// The lines of `lines` when there are some, else the map. A request with lines keeps its
    /// map empty: the map is not read then.
    pub fn of(map: &'a HeaderMap, lines: Option<&'a HeaderLines>) -> Self {
        debug_assert!(lines.is_none() || map.is_empty(), "a head's fields are in its lines or in its map, not both");
        match lines {
            Some(lines) => HeaderView::Lines(lines),
            None => HeaderView::Map(map),
        }
    }

    /// How many field lines there are.
    pub fn len(self) -> usize {
        match self {
            HeaderView::Map(map) => map.len(),
            HeaderView::Lines(lines) => lines.len(),
        }
    }

    /// Whether there is no field.
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// Every field line, name and value.
    pub fn iter(self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
        let (map, lines) = match self {
            HeaderView::Map(map) => (Some(map), None),
            HeaderView::Lines(lines) => (None, Some(lines)),
        };
        let from_map = map.into_iter().flat_map(|m| m.iter().map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes())));
        from_map.chain(lines.into_iter().flat_map(HeaderLines::iter))
    }

    /// The values of header `name`, in order.
    // Inlined: a plain request's checks look up a few names in one or two lines, and the
    // call cost as much as the looking (the map's hashing stays behind a call).
    #[inline]
    pub fn get_all(self, name: &'a HeaderName) -> Values<'a> {
        match self {
            HeaderView::Map(map) => map_values(map, name),
            HeaderView::Lines(lines) => Values::Lines(lines.get_all(name)),
        }
    }

    /// The first value of header `name`.
    pub fn get(self, name: &'a HeaderName) -> Option<&'a [u8]> {
        self.get_all(name).next()
    }

    /// Whether there is a header `name`.
    pub fn contains(self, name: &'a HeaderName) -> bool {
        self.get(name).is_some()
    }

    /// The first value of header `name` as a `HeaderValue` (kept lines share their head's
    /// bytes).
    pub fn value(self, name: &HeaderName) -> Option<HeaderValue> {
        match self {
            HeaderView::Map(map) => map.get(name).cloned(),
            HeaderView::Lines(lines) => lines.value(name),
        }
    }
}

/// The values of header `name` in a map.
#[inline(never)]
fn map_values<'a>(map: &'a HeaderMap, name: &'a HeaderName) -> Values<'a> {
    Values::Map(map.get_all(name).iter())
}

/// The values of one header name in kept lines.
#[derive(Debug, Clone)]
pub struct LineValues<'a> {
    head: &'a [u8],
    lines: std::slice::Iter<'a, [u32; 4]>,
    name: &'a [u8],
}

impl<'a> Iterator for LineValues<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        let (head, name) = (self.head, self.name);
        // The length first: most lines differ in it, and then no slice of the head is made.
        self.lines
            .by_ref()
            .find(|&&[n, nl, _, _]| nl as usize == name.len() && eq_ignore_case(&head[n as usize..(n + nl) as usize], name))
            .map(|&[_, _, v, vl]| &head[v as usize..(v + vl) as usize])
    }
}

/// The values of one header name in a [`HeaderView`].
#[derive(Debug)]
pub enum Values<'a> {
    /// From a map.
    Map(http::header::ValueIter<'a, HeaderValue>),
    /// From kept lines.
    Lines(LineValues<'a>),
}

impl<'a> Iterator for Values<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        match self {
            Values::Map(values) => values.next().map(HeaderValue::as_bytes),
            Values::Lines(values) => values.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(head: &'static [u8]) -> HeaderLines {
        let mut slots = [httparse::EMPTY_HEADER; 16];
        let mut parsed = httparse::Request::new(&mut slots);
        assert!(parsed.parse(head).expect("parse").is_complete());
        let base = head.as_ptr() as usize;
        let at = |p: &[u8]| (p.as_ptr() as usize - base) as u32;
        let spans = parsed.headers.iter().map(|h| [at(h.name.as_bytes()), h.name.len() as u32, at(h.value), h.value.len() as u32]).collect();
        HeaderLines::new(Bytes::from_static(head), spans)
    }

    #[test]
    fn where_lines_sit_is_kept_for_the_next_head_unless_it_grew_large() {
        // Each test runs on a thread of its own: the spares start empty.
        let head = lines(b"GET / HTTP/1.1\r\nHost: a\r\nX-Y: z\r\n\r\n");
        let at = head.lines.as_ptr();
        drop(head);
        let again = places(2);
        assert_eq!(again.as_ptr(), at, "the same vector again");
        assert!(again.is_empty() && again.capacity() >= 2);
        drop(again);

        let mut many = places(LARGEST_KEPT_PLACES + 1);
        many.push([0; 4]);
        drop(HeaderLines::new(Bytes::from_static(b"x: y"), many.iter().map(|_| [0, 1, 3, 1]).collect()));
        drop(HeaderLines::new(Bytes::from_static(b"x: y"), many));
        assert_eq!(SPARE_PLACES.with_borrow(Vec::len), 1, "a short one kept, the grown one freed");
        let kept: Vec<HeaderLines> = (0..KEPT_PLACES + 3).map(|_| HeaderLines::new(Bytes::new(), places(1))).collect();
        drop(kept);
        assert_eq!(SPARE_PLACES.with_borrow(Vec::len), KEPT_PLACES, "at most KEPT_PLACES spares");
    }

    #[test]
    fn lines_and_their_map_read_alike() {
        let kept = lines(b"GET / HTTP/1.1\r\nHost: a\r\nCookie: x=1\r\nX-Y: 2\r\ncookie: z=3\r\n\r\n");
        let map = kept.clone().into_map();
        let (x_y, x_z) = (HeaderName::from_static("x-y"), HeaderName::from_static("x-z"));
        for view in [HeaderView::Lines(&kept), HeaderView::Map(&map)] {
            assert_eq!(view.len(), 4);
            assert_eq!(view.get_all(&http::header::COOKIE).collect::<Vec<_>>(), [&b"x=1"[..], b"z=3"]);
            assert_eq!(view.get(&x_y), Some(&b"2"[..]));
            assert!(!view.contains(&x_z));
            assert_eq!(view.value(&http::header::HOST).expect("host"), "a");
            let names: Vec<String> = view.iter().map(|(n, _)| String::from_utf8_lossy(n).to_ascii_lowercase()).collect();
            assert_eq!(names.len(), 4);
        }
        assert_eq!(kept.iter().map(|(n, _)| n).collect::<Vec<_>>(), [&b"Host"[..], b"Cookie", b"X-Y", b"cookie"]);
    }

    #[test]
    fn kept_lines_are_written_as_sent_in_runs() {
        let kept = lines(b"GET / HTTP/1.1\r\nHost: a\r\nX-A:1\r\nX-Drop: d\r\nX-B: 2  \r\nX-E:\r\nX-C:\t3\r\n\r\n");
        let written = |keep: &dyn Fn(&[u8]) -> bool| {
            let mut out = b"^".to_vec();
            kept.write_where(&mut out, |name, _| keep(name));
            String::from_utf8(out).expect("utf8")
        };
        assert_eq!(written(&|_| true), "^Host: a\r\nX-A:1\r\nX-Drop: d\r\nX-B: 2\r\nX-E:\r\nX-C:\t3\r\n", "the sender's spelling, trailing whitespace left out");
        assert_eq!(written(&|n| n != b"X-Drop"), "^Host: a\r\nX-A:1\r\nX-B: 2\r\nX-E:\r\nX-C:\t3\r\n");
        assert_eq!(written(&|n| n == b"X-E" || n == b"Host"), "^Host: a\r\nX-E:\r\n");
        assert_eq!(written(&|_| false), "^");
    }
}
