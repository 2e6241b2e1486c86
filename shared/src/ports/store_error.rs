//! The error every store port answers with.

/// A store failure. Callers answer 503 on `Unavailable`; `Corrupt` means a record could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
}
