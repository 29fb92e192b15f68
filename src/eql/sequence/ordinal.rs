//! Where an event sits in the stream: [`Ordinal`] and its [`TieBreaker`].

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

/// The value of the tiebreaker field of an event.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum TieBreaker {
    Int(i64),
    Float(f64),
    Str(String),
}

impl TieBreaker {
    fn rank(&self) -> u8 {
        match self {
            TieBreaker::Int(_) | TieBreaker::Float(_) => 0,
            TieBreaker::Str(_) => 1,
        }
    }
}

impl Ord for TieBreaker {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (TieBreaker::Int(a), TieBreaker::Int(b)) => a.cmp(b),
            (TieBreaker::Float(a), TieBreaker::Float(b)) => a.total_cmp(b),
            (TieBreaker::Int(a), TieBreaker::Float(b)) => (*a as f64).total_cmp(b),
            (TieBreaker::Float(a), TieBreaker::Int(b)) => a.total_cmp(&(*b as f64)),
            (TieBreaker::Str(a), TieBreaker::Str(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for TieBreaker {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for TieBreaker {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for TieBreaker {}

/// The position of an event in the stream.
///
/// Total order: timestamp, then events *with* a tiebreaker before those
/// without (Elasticsearch PR #65078), then the tiebreaker, then the input
/// index (Elasticsearch adds an implicit shard/doc tiebreaker since 7.13).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ordinal {
    /// Epoch milliseconds.
    pub timestamp: i64,
    pub tiebreaker: Option<TieBreaker>,
    /// Position in the input; makes ordinals unique.
    pub index: u64,
}

impl Ordinal {
    pub fn new(timestamp: i64, tiebreaker: Option<TieBreaker>, index: u64) -> Self {
        Ordinal {
            timestamp,
            tiebreaker,
            index,
        }
    }
}

impl Ord for Ordinal {
    fn cmp(&self, other: &Self) -> Ordering {
        self.timestamp
            .cmp(&other.timestamp)
            .then_with(|| match (&self.tiebreaker, &other.tiebreaker) {
                (Some(a), Some(b)) => a.cmp(b),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            })
            .then_with(|| self.index.cmp(&other.index))
    }
}

impl PartialOrd for Ordinal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
