//! Unknown settings are refused, each named with the closest known key: a typo such as
//! `FILOT_LIMITS__MAX_FILE_BYTE` would otherwise change nothing and say nothing. The known
//! keys are the leaves of the defaults (optional settings included, as empty leaves).

use figment::Figment;

use super::leaves;

/// Keys that were renamed or replaced, with what to set instead.
const REPLACED: &[(&str, &str)] = &[(
    "limits.trust_forwarded_for",
    "limits.trusted_proxies (the reverse proxies' CIDRs)",
)];

/// One problem per key `user` sets that `defaults` does not know.
pub(super) fn unknown(defaults: &Figment, user: &Figment) -> Vec<String> {
    let known: Vec<String> = leaves(defaults).into_iter().map(|(k, _)| k).collect();
    leaves(user)
        .into_iter()
        .map(|(key, _)| key)
        .filter(|key| !known.contains(key))
        .map(|key| {
            let source = user
                .find_metadata(&key)
                .map(|m| {
                    if m.name.contains("environment") {
                        format!(" (from FILOT_{})", key.to_uppercase().replace('.', "__"))
                    } else if let Some(figment::Source::File(path)) = &m.source {
                        format!(" (in {})", path.display())
                    } else {
                        String::new()
                    }
                })
                .unwrap_or_default();
            let hint = if let Some((_, new)) = REPLACED.iter().find(|(old, _)| *old == key) {
                format!("replaced by {new}")
            } else if let Some(new) = duration_key(&key).filter(|k| known.contains(k)) {
                format!("replaced by {new}, a duration with its unit (e.g. \"30s\", \"250ms\")")
            } else {
                match closest(&key, &known) {
                    Some(k) => format!("did you mean {k}?"),
                    None => "no such setting".into(),
                }
            };
            format!("{key}: unknown setting{source}; {hint}")
        })
        .collect()
}

/// The key that replaced an old `*_ms`/`*_secs`/`*_hours` number: the same name without its
/// unit (`outbox.timeout_secs` → `outbox.timeout`), `poll` becoming `poll_interval`.
fn duration_key(old: &str) -> Option<String> {
    let base = ["_ms", "_secs", "_hours"]
        .iter()
        .find_map(|unit| old.strip_suffix(unit))?;
    Some(if base.ends_with("poll") {
        format!("{base}_interval")
    } else {
        base.to_string()
    })
}

/// The known key nearest to `key`, if any is near enough to be what was meant.
fn closest<'a>(key: &str, known: &'a [String]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

/// Levenshtein distance over bytes (keys are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            let next = (row[j + 1] + 1).min(row[j] + 1).min(prev + cost);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closest_known_key_is_suggested() {
        let known = vec![
            "limits.max_file_bytes".to_string(),
            "limits.max_json_bytes".to_string(),
            "listen".to_string(),
        ];
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(
            closest("limits.max_file_byte", &known),
            Some("limits.max_file_bytes")
        );
        assert_eq!(closest("lisen", &known), Some("listen"));
        assert_eq!(closest("something.else.entirely", &known), None);
    }
}
