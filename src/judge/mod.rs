//! Verdicts: [`check`] (against the expectation and between loaders),
//! [`classify`] (errors into classes, the one errno table), [`regression`]
//! (a result file against a baseline).

pub mod check;
pub mod classify;
pub mod regression;
