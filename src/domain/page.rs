//! Pages of a list: a limit and an opaque cursor naming the last item of
//! the page before. Lists are ordered by a key of (rank descending, time
//! descending, id ascending) — rank is 0 except where a list puts some
//! items first (the default workspace) — so a cursor is that key, and the
//! next page is every item after it in that order: stable while items are
//! added or removed (keyset pagination, no offsets that shift).

use base64::Engine as _;

/// The most items one page may hold.
pub const MAX_LIMIT: u32 = 500;

/// Where a page begins: after the item with this key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub rank: i64,
    pub at: i64,
    pub id: String,
}

/// What a caller asked of a list: everything (no limit, as before pages
/// existed), or `limit` items after `after`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: Option<u32>,
    pub after: Option<Cursor>,
}

/// One page: the items, and the cursor of the next page when there is one.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Cursor>,
    /// Every item of the list (all pages), where counting is cheap.
    pub total: Option<u64>,
    /// The limit it was cut at (`None`: the whole list).
    pub limit: Option<u32>,
}

impl<T> Page<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next: self.next,
            total: self.total,
            limit: self.limit,
        }
    }
}

const PREFIX: &str = "c1.";

impl Cursor {
    /// The opaque text a client sends back.
    pub fn encode(&self) -> String {
        let raw = format!("{}:{}:{}", self.rank, self.at, self.id);
        format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
        )
    }

    /// A cursor this API gave out, or why not.
    pub fn decode(text: &str) -> Result<Cursor, String> {
        let bad = || {
            "cursor: not one this API gave out (take nextCursor from the previous page, or leave it out to start at the beginning)".to_string()
        };
        let body = text.strip_prefix(PREFIX).ok_or_else(bad)?;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let mut parts = raw.splitn(3, ':');
        let rank = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let at = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let id = parts.next().filter(|p| !p.is_empty()).ok_or_else(bad)?;
        if id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(bad());
        }
        Ok(Cursor {
            rank,
            at,
            id: id.to_string(),
        })
    }
}

impl PageRequest {
    /// From the query's `limit` and `cursor`: a limit from 1 to
    /// [`MAX_LIMIT`]; a cursor only with a limit.
    pub fn parse(limit: Option<u32>, cursor: Option<&str>) -> Result<PageRequest, String> {
        if let Some(l) = limit {
            if !(1..=MAX_LIMIT).contains(&l) {
                return Err(format!("limit: must be between 1 and {MAX_LIMIT}, got {l}"));
            }
        }
        let after = cursor.map(Cursor::decode).transpose()?;
        if after.is_some() && limit.is_none() {
            return Err("cursor: give limit too (the page size the cursor continues)".into());
        }
        Ok(PageRequest { limit, after })
    }

    /// Cuts a fetch of `limit + 1` rows (see [`PageRequest::fetch`]) into a
    /// page; `key` gives an item's ordering key.
    pub fn cut<T>(
        &self,
        mut rows: Vec<T>,
        total: Option<u64>,
        key: impl Fn(&T) -> Cursor,
    ) -> Page<T> {
        let next = match self.limit {
            Some(l) if rows.len() > l as usize => {
                rows.truncate(l as usize);
                rows.last().map(key)
            }
            _ => None,
        };
        Page {
            items: rows,
            next,
            total,
            limit: self.limit,
        }
    }

    /// How many rows to ask the store for: one more than the page, to
    /// know whether another follows; `None`: all.
    pub fn fetch(&self) -> Option<i64> {
        self.limit.map(|l| i64::from(l) + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_strangers_are_refused() {
        let c = Cursor {
            rank: 1,
            at: 1_700_000_000_123,
            id: "0b7e-aa".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Ok(c.clone()));
        for bad in [
            "",
            "c1.",
            "abc",
            "c1.!!!",
            &format!(
                "c1.{}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("1:x:id")
            ),
            &format!(
                "c1.{}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("1:2:")
            ),
            &format!(
                "c1.{}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("1:2:a' OR 1=1")
            ),
        ] {
            let e = Cursor::decode(bad).unwrap_err();
            assert!(e.starts_with("cursor:"), "{bad}: {e}");
        }
    }

    #[test]
    fn limits_are_bounded_and_a_cursor_needs_one() {
        assert_eq!(PageRequest::parse(None, None), Ok(PageRequest::default()));
        assert!(PageRequest::parse(Some(0), None)
            .unwrap_err()
            .contains("between 1 and 500"));
        assert!(PageRequest::parse(Some(501), None).is_err());
        let c = Cursor {
            rank: 0,
            at: 5,
            id: "x".into(),
        }
        .encode();
        assert!(PageRequest::parse(None, Some(&c))
            .unwrap_err()
            .contains("give limit"));
        assert_eq!(
            PageRequest::parse(Some(10), Some(&c)).unwrap().limit,
            Some(10)
        );
    }

    #[test]
    fn a_page_knows_whether_another_follows() {
        let key = |n: &i64| Cursor {
            rank: 0,
            at: *n,
            id: n.to_string(),
        };
        let p = PageRequest {
            limit: Some(2),
            after: None,
        };
        assert_eq!(p.fetch(), Some(3));
        let page = p.cut(vec![9, 8, 7], Some(3), key);
        assert_eq!(page.items, vec![9, 8]);
        assert_eq!(page.next.unwrap().at, 8);
        let last = p.cut(vec![7], Some(3), key);
        assert!(last.next.is_none());
        let all = PageRequest::default().cut(vec![1, 2, 3], None, key);
        assert_eq!((all.items.len(), all.next), (3, None));
        assert_eq!(PageRequest::default().fetch(), None);
    }
}
