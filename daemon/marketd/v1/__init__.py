"""Generated Protobuf code for the ``marketd.v1`` schema (see ``schemas/``)."""
