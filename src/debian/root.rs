//! Private roots (in progress).
