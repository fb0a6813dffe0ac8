//! ollama-sim: an Ollama server simulator (library + binary). Being written.
