//! Reports of a checked history; see [`timeline`].
pub mod timeline;
