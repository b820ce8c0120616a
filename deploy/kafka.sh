#!/usr/bin/env bash
# Single-node Apache Kafka (KRaft, combined broker + controller) from Maven Central jars.
#   deploy/kafka.sh start   # idempotent; prints the bootstrap address on stdout
#   deploy/kafka.sh stop | status | bootstrap | tool CLASS ARGS...   (e.g. tool org.apache.kafka.tools.ConsumerPerformance)
# With YOUHU_KAFKA_BOOTSTRAP set, nothing is started: that cluster is used as it is.
source "$(dirname "$0")/lib.sh"

K_DIR="$RUN_DIR/kafka"
DATA="$K_DIR/data"
CONF="$K_DIR/server.properties"
PID_FILE="$K_DIR/kafka.pid"
PORT_FILE="$K_DIR/port"
# Jars are cached outside the run dir so a fresh clone on the same machine reuses them.
JAR_CACHE="${YOUHU_KAFKA_JARS:-${XDG_CACHE_HOME:-$HOME/.cache}/youhu/kafka-jars}"
POM="$REPO_DIR/deploy/kafka/pom.xml"
HEAP="${YOUHU_KAFKA_HEAP:-768m}"

ensure_jars() {
  local stamp="$JAR_CACHE/.pom.sha256" want
  want="$(sha256sum "$POM" | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return; fi
  command -v java >/dev/null || apt_ensure openjdk-17-jre-headless
  command -v mvn >/dev/null || apt_ensure maven
  log "fetching Kafka jars from Maven Central into $JAR_CACHE"
  rm -rf "$JAR_CACHE.tmp"; mkdir -p "$JAR_CACHE.tmp"
  mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$JAR_CACHE.tmp" >/dev/null || die "maven could not fetch the Kafka jars"
  rm -rf "$JAR_CACHE"; mv "$JAR_CACHE.tmp" "$JAR_CACHE"; echo "$want" > "$stamp"
}

java_args() {  # the JVM command line for CLASS ARGS...
  JAVA_CMD=(java -Xms128m -Xmx"$HEAP" -XX:+UseG1GC -Djava.awt.headless=true
    -Dkafka.logs.dir="$K_DIR" -Dlog4j2.configurationFile="$REPO_DIR/deploy/kafka/log4j2.properties"
    -cp "$JAR_CACHE/*" "$@")
}
java_run() { java_args "$@"; "${JAVA_CMD[@]}"; }

running() { [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; }
bootstrap() { echo "127.0.0.1:$(cat "$PORT_FILE")"; }

write_config() {  # write_config BROKER_PORT CONTROLLER_PORT
  cat > "$CONF" <<CONF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$2
listeners=PLAINTEXT://127.0.0.1:$1,CONTROLLER://127.0.0.1:$2
advertised.listeners=PLAINTEXT://127.0.0.1:$1
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA
num.partitions=4
# Topics are created explicitly (with their partition counts) by the platform, never by accident.
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=168
CONF
}

format_storage() {
  rm -rf "$DATA"
  local cid; cid="$(java_run kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)"
  java_run kafka.tools.StorageTool format --standalone -t "$cid" -c "$CONF" >/dev/null \
    || die "could not format $DATA"
}

start() {
  if [ -n "${YOUHU_KAFKA_BOOTSTRAP:-}" ]; then echo "$YOUHU_KAFKA_BOOTSTRAP"; return; fi
  ensure_jars
  if running && port_open "$(cat "$PORT_FILE")"; then bootstrap; return; fi
  stop_quiet
  mkdir -p "$K_DIR"
  local attempt bport cport
  for attempt in 1 2 3; do
    # Reuse the last ports (and so the data) when they are still free. The controller's own
    # address is pinned in the metadata log at format time, so new ports mean a fresh format.
    if [ "$attempt" = 1 ] && [ -f "$K_DIR/ports" ] && [ -f "$DATA/meta.properties" ]; then
      read -r bport cport < "$K_DIR/ports"
      if port_open "$bport" || port_open "$cport"; then bport=""; fi
    else bport=""; fi
    if [ -z "$bport" ]; then
      bport="$(free_port)"; cport="$(free_port)"
      while [ "$cport" = "$bport" ]; do cport="$(free_port)"; done
      write_config "$bport" "$cport"
      format_storage
      echo "$bport $cport" > "$K_DIR/ports"
    fi
    echo "$bport" > "$PORT_FILE"
    java_args kafka.Kafka "$CONF"
    nohup "${JAVA_CMD[@]}" > "$K_DIR/stdout.log" 2>&1 &
    echo $! > "$PID_FILE"
    local i
    for i in $(seq 1 120); do
      running || break
      if port_open "$bport" && [ "$(grep -c 'Kafka Server started' "$K_DIR/server.log" 2>/dev/null)" -gt \
           "$(cat "$K_DIR/started.count" 2>/dev/null || echo 0)" ]; then
        grep -c 'Kafka Server started' "$K_DIR/server.log" > "$K_DIR/started.count"
        log "Kafka ready on 127.0.0.1:$bport (controller $cport)"
        bootstrap; return
      fi
      sleep 0.5
    done
    log "start attempt $attempt failed (see $K_DIR/server.log, $K_DIR/stdout.log)"
    stop_quiet
  done
  die "Kafka did not start"
}

stop_quiet() {
  if running; then
    local pid; pid="$(cat "$PID_FILE")"
    kill -TERM "$pid" 2>/dev/null || true
    local i; for i in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PID_FILE"
}

case "${1:-}" in
  start) start ;;
  stop) [ -n "${YOUHU_KAFKA_BOOTSTRAP:-}" ] || { stop_quiet; log "stopped"; } ;;
  status) if [ -n "${YOUHU_KAFKA_BOOTSTRAP:-}" ]; then echo "external: $YOUHU_KAFKA_BOOTSTRAP";
          elif running; then echo "running: $(bootstrap)"; else echo "stopped"; exit 3; fi ;;
  bootstrap) if [ -n "${YOUHU_KAFKA_BOOTSTRAP:-}" ]; then echo "$YOUHU_KAFKA_BOOTSTRAP"; else bootstrap; fi ;;
  tool) shift; ensure_jars; java_run "$@" ;;
  *) echo "usage: $0 start|stop|status|bootstrap|tool CLASS ARGS..." >&2; exit 2 ;;
esac
