//! Caribou SDK core (work in progress).
