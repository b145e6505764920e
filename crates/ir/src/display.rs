//! Text form of the IR, for golden tests and `--dump-ir`.
