"""Build the data: raw sources -> filters and dedup as datatrove pipelines -> a corpus `prepare`
reads (`mixtune process`). Needs the `process` extra (datatrove, lingua, spacy); its tasks run on
`mixtune.executors`."""
