//! quorate-workloads: what clients do (op generators) and which checks each history gets.
