//! Numbers and header lists written and read without the formatting
//! machinery (these run for every message).

/// Appends `n` in decimal (no formatting machinery: every response writes two).
pub fn push_decimal(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(decimal(n, &mut [0; 20]).as_bytes());
}

/// `n` in decimal, written at the end of `buf`.
pub fn decimal(mut n: usize, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

/// Appends `n` in lower-case hex, zero-padded to `width` digits.
pub fn push_hex(out: &mut String, mut n: u64, width: usize) {
    let mut buf = [b'0'; 16];
    let mut i = buf.len();
    while n != 0 || buf.len() - i < width.max(1) {
        i -= 1;
        buf[i] = b"0123456789abcdef"[(n & 15) as usize];
        n >>= 4;
    }
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or("0"));
}

/// Appends an address as `Display` writes it; IPv4 without formatting machinery.
pub fn push_ip(out: &mut String, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(decimal(usize::from(o), &mut [0; 20]));
            }
        }
        std::net::IpAddr::V6(v6) => {
            use std::fmt::Write as _;
            let _ = write!(out, "{v6}");
        }
    }
}

/// Splits a header value at commas outside quotes and angle brackets.
pub fn split_list(value: &str) -> Vec<&str> {
    list_items(value).collect()
}

/// The items of a list-valued header, lazily, empty items skipped. A byte
/// scan: the delimiters are ASCII, so every cut is a char boundary.
pub fn list_items(value: &str) -> ListItems<'_> {
    ListItems { rest: Some(value) }
}

pub struct ListItems<'a> {
    rest: Option<&'a str>,
}

impl<'a> Iterator for ListItems<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        loop {
            let value = self.rest?;
            if memchr::memchr(b',', value.as_bytes()).is_none() {
                // No comma at all: one item (the usual case), no scan needed.
                self.rest = None;
                let part = value.trim();
                return (!part.is_empty()).then_some(part);
            }
            let (mut quoted, mut angle, mut escaped) = (false, false, false);
            let mut cut = None;
            for (i, &b) in value.as_bytes().iter().enumerate() {
                if escaped {
                    escaped = false;
                    continue;
                }
                match b {
                    b'\\' if quoted => escaped = true,
                    b'"' => quoted = !quoted,
                    b'<' if !quoted => angle = true,
                    b'>' if !quoted => angle = false,
                    b',' if !quoted && !angle => {
                        cut = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            let part = match cut {
                Some(i) => {
                    self.rest = Some(&value[i + 1..]);
                    &value[..i]
                }
                None => {
                    self.rest = None;
                    value
                }
            };
            let part = part.trim();
            if !part.is_empty() {
                return Some(part);
            }
        }
    }
}
