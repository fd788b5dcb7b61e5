"""docs/asyncapi.yaml: the broker as an AsyncAPI 3.0 document, from `chat_contracts.topology`.

- `broker`: what the document says, derived from the topology (destinations, what reaches each
  queue, reply queues, dead letters);
- `words`: how names, docstrings and queues read in it;
- `channels`, `operations`: its channels (exchanges and keys, queues, replies) and operations;
- `document`: the whole document (info, servers, messages, schemas);
- `yaml_text`: the document as stable YAML.
"""
