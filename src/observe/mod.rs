//! From raw records to the canonical trace: [`abi`] decodes `struct
//! pc_event` (the one decoder), [`symbolize`] turns addresses into names,
//! [`normalise`] makes the trace every check compares (the one normaliser).

pub mod abi;
pub mod normalise;
pub mod symbolize;
