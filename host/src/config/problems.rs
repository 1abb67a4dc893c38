//! What the checks found wrong, each problem with the key path it is about; the one type
//! every section's checks write to (and depend on nothing but [`locate`](super::locate)).

use super::locate::Seg;

/// Problems found so far, each with the key path it is about.
#[derive(Default)]
pub(crate) struct Problems(pub Vec<(Vec<Seg>, String)>);

impl Problems {
    pub(crate) fn push(&mut self, path: &[Seg], message: impl Into<String>) {
        self.0.push((path.to_vec(), message.into()));
    }
}

/// `path` with key `k` appended.
pub(crate) fn key(path: &[Seg], k: &str) -> Vec<Seg> {
    let mut p = path.to_vec();
    p.push(Seg::Key(k.to_string()));
    p
}

/// `path` with array index `i` appended.
pub(crate) fn index(path: &[Seg], i: usize) -> Vec<Seg> {
    let mut p = path.to_vec();
    p.push(Seg::Index(i));
    p
}
