//! Pagination: GitHub lists end their page with `Link: <url>; rel="next"` while more pages follow.

use reqwest::Url;
use reqwest::header::{HeaderMap, LINK};
use serde::de::DeserializeOwned;

use super::client::GitHubClient;
use super::transport::decode;
use super::{GitHubError, RepoRef};

/// Stops a `Link` loop (or an absurdly long list) from running forever: 100 pages of 100 items.
const MAX_PAGES: usize = 100;

/// The `rel="next"` target of a `Link` header.
pub(super) fn next_link(headers: &HeaderMap) -> Option<String> {
    let link = headers.get(LINK)?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim().replace(' ', "");
            p == "rel=\"next\"" || p == "rel=next"
        });
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| target.to_owned())
    })
}

/// The pages of one list, fetched one at a time so that a search can stop early.
pub(super) struct Pages<'c> {
    client: &'c GitHubClient,
    installation: Option<u64>,
    next: Option<Url>,
    fetched: usize,
}

impl<'c> Pages<'c> {
    pub(super) fn new(client: &'c GitHubClient, repo: RepoRef<'_>, first: Url) -> Self {
        Self {
            client,
            installation: repo.installation_id,
            next: Some(first),
            fetched: 0,
        }
    }

    pub(super) async fn next<P: DeserializeOwned>(&mut self) -> Result<Option<P>, GitHubError> {
        let Some(url) = self.next.take() else {
            return Ok(None);
        };
        if self.fetched == MAX_PAGES {
            return Err(GitHubError::Decode(format!(
                "a list longer than {MAX_PAGES} pages at {}",
                url.path()
            )));
        }
        self.fetched += 1;
        let response = self.client.get(self.installation, &url).await?;
        if let Some(next) = next_link(response.headers()) {
            let next = Url::parse(&next)
                .map_err(|e| GitHubError::Decode(format!("a Link header's next page: {e}")))?;
            if !self.client.is_api_url(&next) {
                return Err(GitHubError::Decode(format!(
                    "a next page outside the API: {next}"
                )));
            }
            self.next = Some(next);
        }
        decode(response, url.path()).await.map(Some)
    }

    /// Every item of every remaining page.
    pub(super) async fn collect<P, T>(
        mut self,
        items: impl Fn(P) -> Vec<T>,
    ) -> Result<Vec<T>, GitHubError>
    where
        P: DeserializeOwned,
    {
        let mut all = Vec::new();
        while let Some(page) = self.next::<P>().await? {
            all.extend(items(page));
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn link(value: &str) -> Option<String> {
        let mut headers = HeaderMap::new();
        headers.insert(LINK, HeaderValue::from_str(value).unwrap());
        next_link(&headers)
    }

    #[test]
    fn finds_the_next_page_among_githubs_relations() {
        let header = r#"<https://api.github.com/repositories/1/actions/runs?page=1>; rel="prev", <https://api.github.com/repositories/1/actions/runs?page=3>; rel="next", <https://api.github.com/repositories/1/actions/runs?page=9>; rel="last""#;
        assert_eq!(
            link(header).as_deref(),
            Some("https://api.github.com/repositories/1/actions/runs?page=3")
        );
        assert_eq!(
            link(
                r#"<https://x.test/a?page=1>; rel="first", <https://x.test/a?page=2>; rel="prev""#
            ),
            None
        );
        assert_eq!(link("garbage"), None);
        assert_eq!(next_link(&HeaderMap::new()), None);
    }
}
