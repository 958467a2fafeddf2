"""Octue metadata: values, labels, tags, the codec and the `.octue` file store."""
