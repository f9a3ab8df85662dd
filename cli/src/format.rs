//! How values look on a terminal.

/// `docker.io/library/busybox:latest` → `busybox:latest`.
pub fn familiar(name: &str) -> String {
    name.strip_prefix("docker.io/library/")
        .or_else(|| name.strip_prefix("docker.io/"))
        .unwrap_or(name)
        .to_string()
}

/// Split a full name into (repository, tag) as `berth images` shows them.
pub fn familiar_parts(name: &str) -> (String, String) {
    let f = familiar(name);
    if let Some((repo, digest)) = f.split_once('@') {
        let repo = repo
            .rsplit_once(':')
            .filter(|(_, t)| !t.contains('/'))
            .map(|(r, _)| r)
            .unwrap_or(repo);
        return (
            repo.to_string(),
            format!("<none> ({})", &digest[..digest.len().min(19)]),
        );
    }
    let slash = f.rfind('/').map(|i| i + 1).unwrap_or(0);
    match f[slash..].rfind(':') {
        Some(i) => (f[..slash + i].to_string(), f[slash + i + 1..].to_string()),
        None => (f, "<none>".to_string()),
    }
}

/// Bytes in SI units, as Docker prints them.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes}B")
    } else {
        format!("{:.3}", v)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
            + UNITS[u]
    }
}

/// `3 days ago` for a time in seconds since the epoch.
pub fn ago(t: i64) -> String {
    if t <= 0 {
        return "unknown".into();
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let s = (now - t).max(0);
    let (n, unit) = match s {
        0..=59 => return "less than a minute ago".into(),
        60..=3599 => (s / 60, "minute"),
        3600..=86399 => (s / 3600, "hour"),
        86400..=1209599 => (s / 86400, "day"),
        1209600..=5183999 => (s / 604800, "week"),
        5184000..=63071999 => (s / 2592000, "month"),
        _ => (s / 31536000, "year"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// Left-aligned columns separated by three spaces.
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 < r.len() {
                line.push_str(&format!("{cell:<w$}   ", w = widths[c]));
            } else {
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            familiar_parts("docker.io/library/busybox:latest"),
            ("busybox".into(), "latest".into())
        );
        assert_eq!(
            familiar_parts("127.0.0.1:5000/a/b:v1"),
            ("127.0.0.1:5000/a/b".into(), "v1".into())
        );
        assert_eq!(
            familiar_parts("docker.io/me/app:1"),
            ("me/app".into(), "1".into())
        );
        let (r, t) = familiar_parts("127.0.0.1:5000/x@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
        assert_eq!(r, "127.0.0.1:5000/x");
        assert!(t.starts_with("<none> (sha256:"), "{t}");
    }

    #[test]
    fn sizes() {
        assert_eq!(size(999), "999B");
        assert_eq!(size(4_260_000), "4.26MB");
        assert_eq!(size(1_000_000_000), "1GB");
    }
}
