//! An events source with the indicator lists of threat_match rules served
//! from elsewhere: `hunt --indicators FILE` reads events from its files and
//! indicators from an NDJSON file of their own (Kibana reads both from the
//! cluster, where `threat_index` tells them apart; offline every events
//! file is every rule's data, so indicators need a place of their own).
//! Without an indicators file a threat_match rule finds no indicators and
//! its run says so.

use super::ndjson::NdjsonSource;
use super::SourceError;
use super::{DocRef, Document, EventSource, EventStream, FetchRequest, GroupCount, Groups};

/// The warning of a run whose indicators have no source.
pub const NO_INDICATORS_FILE: &str =
    "no indicators file was given (`hunt --indicators FILE`): the threat_match rule has no \
     indicators to match";

/// `events` for everything, `indicators` for indicator lists.
pub struct WithIndicators<S> {
    pub events: S,
    pub indicators: Option<NdjsonSource>,
}

impl<S: EventSource> EventSource for WithIndicators<S> {
    async fn fetch(&self, request: FetchRequest) -> Result<EventStream, SourceError> {
        self.events.fetch(request).await
    }

    async fn fetch_sources(&self, refs: &[DocRef]) -> Result<Vec<Document>, SourceError> {
        self.events.fetch_sources(refs).await
    }

    async fn count_groups(
        &self,
        request: &FetchRequest,
        count: &GroupCount,
    ) -> Result<Option<Groups>, SourceError> {
        self.events.count_groups(request, count).await
    }

    async fn fetch_indicators(&self, request: FetchRequest) -> Result<EventStream, SourceError> {
        match &self.indicators {
            Some(source) => source.fetch(request).await,
            None => Ok(EventStream::from_documents(
                vec![NO_INDICATORS_FILE.to_string()],
                Vec::new(),
            )),
        }
    }

    async fn fetch_indicator_sources(&self, refs: &[DocRef]) -> Result<Vec<Document>, SourceError> {
        match &self.indicators {
            Some(source) => source.fetch_sources(refs).await,
            None => Ok(Vec::new()),
        }
    }
}
