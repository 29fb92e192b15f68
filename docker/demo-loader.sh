#!/bin/sh
# One-shot demo loader (docker compose's demo-loader, and scripts/demo.sh):
# writes one founding-rule attack (PowerShell loads taskschd.dll, then
# connects to 10.0.0.5:135 two seconds later, same host and process) and one
# look-alike that must not alert (the same to 127.0.0.1) into
# logs-endpoint.events.* data streams, timestamped a minute ago, so
# detectd's first run of the rule (within one 5-minute interval of its
# start, over now-9m) raises one alert: a shell plus 2 building blocks.
set -eu
ES="${ELASTICSEARCH_URL:-http://elasticsearch:9200}"
# credentials when the cluster has security on (the "kibana" profile)
AUTH=""
if [ -n "${ELASTICSEARCH_USERNAME:-}" ]; then
    AUTH="$ELASTICSEARCH_USERNAME:${ELASTICSEARCH_PASSWORD:-}"
fi
es() { if [ -n "$AUTH" ]; then curl -u "$AUTH" "$@"; else curl "$@"; fi; }

until es -fsS "$ES/_cluster/health?wait_for_status=yellow&timeout=5s" >/dev/null; do
    echo "waiting for $ES"
    sleep 2
done

now=$(date -u +%s)
# GNU date reads `-d @epoch`, BSD / macOS date `-r epoch`
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%S.000Z 2>/dev/null || date -u -r "$1" +%Y-%m-%dT%H:%M:%S.000Z; }
t_lib=$(iso $((now - 60)))
t_net=$(iso $((now - 58)))
host="demo-host-$now"

event() { # category entity destination-address timestamp
    if [ "$1" = library ]; then
        extra='"dll":{"name":"taskschd.dll","path":"C:\\Windows\\System32\\taskschd.dll"}'
    else
        extra="\"destination\":{\"address\":\"$3\",\"ip\":\"$3\",\"port\":135},\"source\":{\"ip\":\"10.0.0.9\",\"port\":50000}"
    fi
    printf '{"create":{"_index":"logs-endpoint.events.%s-demo"}}\n' "$1"
    printf '{"@timestamp":"%s","event":{"category":"%s","kind":"event"},"host":{"id":"%s","name":"demo-ws","os":{"type":"windows"}},"process":{"entity_id":"%s","name":"powershell.exe","pid":4242},%s}\n' \
        "$4" "$1" "$host" "$2" "$extra"
}

{
    event library attack 10.0.0.5 "$t_lib"
    event network attack 10.0.0.5 "$t_net"
    event library benign 127.0.0.1 "$t_lib"
    event network benign 127.0.0.1 "$t_net"
} | es -fsS -H 'Content-Type: application/x-ndjson' -X POST \
    "$ES/_bulk?refresh=true&filter_path=errors,items.*.status" --data-binary @-
echo
echo "demo events written (host.id $host); an alert appears in .alerts-security.alerts-default within 5 minutes:"
if [ -n "$AUTH" ]; then
    echo "  curl -s -u elastic:<password> 'localhost:9200/.alerts-security.alerts-default/_search?q=host.id:$host' | head -c 2000"
    echo "  or in Kibana: http://localhost:5601 -> Security -> Alerts"
else
    echo "  curl -s 'localhost:9200/.alerts-security.alerts-default/_search?q=host.id:$host' | head -c 2000"
fi
