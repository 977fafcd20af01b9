#!/bin/sh
# Start pycat in the background: catalina.sh start (see catalina.sh for the environment it honours).
PRG="$0"
while [ -h "$PRG" ]; do
  ls=$(ls -ld "$PRG")
  link=$(expr "$ls" : '.*-> \(.*\)$')
  if expr "$link" : '/.*' > /dev/null; then PRG="$link"; else PRG=$(dirname "$PRG")/"$link"; fi
done
exec "$(dirname "$PRG")/catalina.sh" start "$@"
