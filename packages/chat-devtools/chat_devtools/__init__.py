"""What the tests and the benchmark both need to run the product and drive it, in one place.

- `infra`: RabbitMQ and PostgreSQL (testcontainers where a Docker engine answers, else the
  `AMQP_URL` / `DATABASE_URL` servers), a fresh migrated database and a broker prefix each;
- `stack`: the five services as real processes, on free ports;
- `seed`: organisations, users and tokens, through the services' `admin` modules;
- `client`: a WebSocket chat client; `questions`: ready-made events of a question and its
  answer;
- `otlp`: a local OTLP/HTTP receiver, to see the traces the services export.

It uses the services' public interfaces only (their `admin` modules and their processes).
"""
