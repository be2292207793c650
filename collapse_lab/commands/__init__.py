"""One module per CLI subcommand; each only parses arguments, calls one library function and prints."""
