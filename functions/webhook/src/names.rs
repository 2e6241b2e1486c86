//! GitHub's own limits on the names the webhook puts into its API calls (logins in paths, a branch in a
//! query). A signed payload outside them is not one GitHub would send: it is refused as bad input
//! rather than turned into a call GitHub rejects, which would read as GitHub being unavailable (a 5xx).

/// A GitHub login: 1-39 letters, digits, hyphens (and underscores, which managed accounts use), with
/// an optional `[bot]` suffix for apps.
pub(crate) fn is_login(login: &str) -> bool {
    let name = login.strip_suffix("[bot]").unwrap_or(login);
    (1..=39).contains(&name.len())
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

/// A branch name as git allows it: at most 255 bytes, no control characters or spaces, none of
/// `~^:?*[\`.
pub(crate) fn is_branch(branch: &str) -> bool {
    (1..=255).contains(&branch.len())
        && !branch
            .chars()
            .any(|c| c.is_control() || c == ' ' || "~^:?*[\\".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_follow_githubs_rules() {
        for login in ["octocat", "octo-org", "a", "dependabot[bot]", "x_shortcode"] {
            assert!(is_login(login), "{login}");
        }
        let too_long = "a".repeat(40);
        for login in ["", "[bot]", "octo/cat", "octo cat", "é", too_long.as_str()] {
            assert!(!is_login(login), "{login}");
        }
    }

    #[test]
    fn branches_follow_gits_rules() {
        for branch in ["main", "feature/ci-fix", "release-1.2", "ünïcode"] {
            assert!(is_branch(branch), "{branch}");
        }
        let too_long = "b".repeat(256);
        for branch in ["", "a b", "a:b", "a\u{0}b", "a~1", too_long.as_str()] {
            assert!(!is_branch(branch), "{branch}");
        }
    }
}
