//! [`Header`], the HTTP header both the health-check and the header-rewrite kinds see.

/// One HTTP header line: a name and a value.
///
/// Header-rewrite plugins receive names in lowercase; health-check plugins see them as the
/// member sent them. Compare names with [`Header::is`], which ignores case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    /// The name.
    pub name: String,
    /// The value. A received value that is not valid UTF-8 arrives with the invalid bytes
    /// replaced by U+FFFD.
    pub value: String,
}

impl Header {
    /// A header from a name and a value.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self { name: name.into(), value: value.into() }
    }

    /// Whether this header is called `name`, ignoring ASCII case.
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

/// The value of the first header called `name` (ignoring case), if any.
pub fn find<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers.iter().find(|h| h.is(name)).map(|h| h.value.as_str())
}
