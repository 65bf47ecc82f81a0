//! Debian kernel images for the VM matrix (issue 4): fetch, cache, list.
