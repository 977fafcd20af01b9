#!/bin/sh
# Stop pycat: catalina.sh stop (the shutdown port, then the pid from CATALINA_PID).
PRG="$0"
while [ -h "$PRG" ]; do
  ls=$(ls -ld "$PRG")
  link=$(expr "$ls" : '.*-> \(.*\)$')
  if expr "$link" : '/.*' > /dev/null; then PRG="$link"; else PRG=$(dirname "$PRG")/"$link"; fi
done
exec "$(dirname "$PRG")/catalina.sh" stop "$@"
