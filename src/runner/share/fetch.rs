//! The source a rule run reads through when scans are shared: a window's
//! fetch is answered from the cohort's scan when it was planned there, and
//! everything else goes to the real source.

use chrono::{DateTime, Utc};

use super::ScanBoard;
use crate::rule::Rule;
use crate::runner::run::tail::TailStates;
use crate::runner::run::RunnerSettings;
use crate::source::{
    Anomalies, AnomalyRequest, DocRef, Document, EsqlRows, EventSource, EventStream, FetchRequest,
    GroupCount, Groups, NewTerms, NewTermsAsk, ScanError, ScanOptions, SharedScan, SourceError,
};
use crate::state::StateStore;

/// `inner`, with `rule`'s window fetches at `now` taken from `board`.
pub(crate) struct SharedFetch<'a, S, T> {
    pub(crate) inner: &'a S,
    /// Where the board finds the checkpoints it plans with ...
    pub(crate) state: &'a T,
    /// ... and which tails go on from a carried matcher.
    pub(crate) tails: &'a TailStates,
    pub(crate) board: Option<&'a ScanBoard>,
    pub(crate) settings: &'a RunnerSettings,
    pub(crate) rule: &'a Rule,
    pub(crate) now: DateTime<Utc>,
    /// A near-real-time tail (its scans are the tails' cohort's).
    pub(crate) tail: bool,
}

impl<S: EventSource, T: StateStore> EventSource for SharedFetch<'_, S, T> {
    async fn fetch(&self, request: FetchRequest) -> Result<EventStream, SourceError> {
        if let Some(board) = self.board {
            let shared = board
                .take(
                    (self.inner, self.state, self.tails),
                    self.settings,
                    (self.rule, self.now, self.tail),
                    &request,
                )
                .await;
            if let Some(stream) = shared {
                return Ok(stream);
            }
        }
        self.inner.fetch(request).await
    }

    async fn fetch_shared(
        &self,
        requests: &[FetchRequest],
        options: ScanOptions,
    ) -> Result<Option<SharedScan>, ScanError> {
        self.inner.fetch_shared(requests, options).await
    }

    async fn fetch_sources(&self, refs: &[DocRef]) -> Result<Vec<Document>, SourceError> {
        self.inner.fetch_sources(refs).await
    }

    async fn fetch_indicators(&self, request: FetchRequest) -> Result<EventStream, SourceError> {
        self.inner.fetch_indicators(request).await
    }

    async fn fetch_indicator_sources(&self, refs: &[DocRef]) -> Result<Vec<Document>, SourceError> {
        self.inner.fetch_indicator_sources(refs).await
    }

    async fn count_groups(
        &self,
        request: &FetchRequest,
        count: &GroupCount,
    ) -> Result<Option<Groups>, SourceError> {
        self.inner.count_groups(request, count).await
    }

    async fn esql(&self, request: &FetchRequest, query: &str) -> Result<EsqlRows, SourceError> {
        self.inner.esql(request, query).await
    }

    async fn search_ids(
        &self,
        indices: &[String],
        ids: &[String],
    ) -> Result<Vec<Document>, SourceError> {
        self.inner.search_ids(indices, ids).await
    }

    async fn anomalies(&self, request: &AnomalyRequest) -> Result<Anomalies, SourceError> {
        self.inner.anomalies(request).await
    }

    async fn new_terms(
        &self,
        request: &FetchRequest,
        ask: &NewTermsAsk,
    ) -> Result<Option<NewTerms>, SourceError> {
        self.inner.new_terms(request, ask).await
    }
}
