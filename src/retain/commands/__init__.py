"""One module per `retain` subcommand."""
