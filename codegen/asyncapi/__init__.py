"""docs/asyncapi.yaml: the broker as an AsyncAPI 3.0 document, from `chat_contracts.topology`.

- `broker`: what the document says, derived from the topology (destinations, what reaches each
  queue, reply queues, dead letters);
- `document`: the document itself (channels, operations, messages, schemas);
- `yaml_text`: the document as stable YAML.
"""
