//! Following a paged Kinde list to its end: the one loop every live source's list shares
//! (Account API `starting_after` cursors and Management API `next_token`s alike).

use std::collections::HashSet;
use std::future::Future;

use serde::Deserialize;

use super::SourceError;

/// More pages than this is taken as a broken cursor, not as a user with that many entries.
pub(super) const MAX_PAGES: usize = 50;

/// An entry of a Kinde list that is identified by its key (a permission, a role).
#[derive(Deserialize)]
pub(super) struct Keyed {
    pub(super) key: String,
}

/// One page of a list: its entries, and the cursor of the next page if there is one.
pub(super) struct Page<T> {
    pub(super) items: Vec<T>,
    pub(super) next: Option<String>,
}

/// Every entry of a list, asking `fetch` for one page after another: first with no cursor,
/// then with the cursor the previous page gave, until a page gives none.
///
/// A cursor already used (a list that loops, or a cursor that does not advance) or more than
/// [`MAX_PAGES`] pages is an error: a broken list, never a partial answer.
pub(super) async fn collect<T, F, Fut>(mut fetch: F) -> Result<Vec<T>, SourceError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<Page<T>, SourceError>>,
{
    let mut items = Vec::new();
    let mut used = HashSet::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let page = fetch(cursor.take()).await?;
        items.extend(page.items);
        let Some(next) = page.next else {
            return Ok(items);
        };
        if !used.insert(next.clone()) {
            return Err(SourceError::unavailable(
                "pagination cursor did not advance",
            ));
        }
        cursor = Some(next);
    }
    Err(SourceError::unavailable("too many pages"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pages from a script: page n (from 0) holds `[n]` and names `next(n)` as its successor.
    async fn run(
        next: impl Fn(usize) -> Option<String>,
    ) -> (Result<Vec<usize>, SourceError>, usize) {
        let mut asked = Vec::new();
        let result = collect(|cursor: Option<String>| {
            let n = asked.len();
            asked.push(cursor);
            let page = Page {
                items: vec![n],
                next: next(n),
            };
            std::future::ready(Ok(page))
        })
        .await;
        (result, asked.len())
    }

    #[tokio::test]
    async fn follows_cursors_to_the_last_page() {
        let (items, calls) = run(|n| (n < 3).then(|| format!("c{n}"))).await;
        assert_eq!(items.unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(calls, 4);
    }

    #[tokio::test]
    async fn a_cursor_used_twice_is_an_error() {
        let (stuck, calls) = run(|_| Some("same".into())).await;
        assert!(stuck.unwrap_err().reason().contains("did not advance"));
        assert_eq!(calls, 2);
        let (looped, calls) = run(|n| Some(format!("c{}", n % 3))).await;
        assert!(looped.is_err());
        assert_eq!(calls, 4);
    }

    #[tokio::test]
    async fn more_than_max_pages_is_an_error() {
        let (endless, calls) = run(|n| Some(format!("c{n}"))).await;
        assert_eq!(endless.unwrap_err().reason(), "too many pages");
        assert_eq!(calls, MAX_PAGES);
    }

    #[tokio::test]
    async fn an_error_ends_the_walk() {
        let mut calls = 0;
        let result: Result<Vec<u8>, _> = collect(|_| {
            calls += 1;
            std::future::ready(Err(SourceError::unavailable("down")))
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls, 1);
    }
}
