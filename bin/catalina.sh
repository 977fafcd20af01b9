#!/bin/sh
# pycat control script, Tomcat style:  catalina.sh ( run | start | stop [n] [-force] | configtest [--strict] | version )
#
# Environment:
#   CATALINA_HOME  the pycat install; default: the folder above this script
#   CATALINA_BASE  the node (conf/, webapps/, logs/, work/, temp/); default: CATALINA_HOME
#   CATALINA_PID   pid file; default: $CATALINA_BASE/logs/catalina.pid
#   CATALINA_OUT   output of a background server; default: $CATALINA_BASE/logs/catalina.out
#   CATALINA_OPTS, JAVA_OPTS   their -Dname=value entries become ${name} properties
#   PYTHON         the interpreter; default: python3
# Extra arguments go to `pycat <command>`, e.g. `catalina.sh run -Dhttp.port=8081`.

# resolve links: $0 may be a symlink to the real script
PRG="$0"
while [ -h "$PRG" ]; do
  ls=$(ls -ld "$PRG")
  link=$(expr "$ls" : '.*-> \(.*\)$')
  if expr "$link" : '/.*' > /dev/null; then
    PRG="$link"
  else
    PRG=$(dirname "$PRG")/"$link"
  fi
done
PRGDIR=$(dirname "$PRG")

[ -z "$CATALINA_HOME" ] && CATALINA_HOME=$(cd "$PRGDIR/.." >/dev/null && pwd)
[ -z "$CATALINA_BASE" ] && CATALINA_BASE="$CATALINA_HOME"
export CATALINA_HOME CATALINA_BASE

# pycat is importable from the install even when it was never pip-installed
PYTHONPATH="$CATALINA_HOME${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONPATH
PYTHON=${PYTHON:-python3}

if [ $# -eq 0 ]; then
  echo "Usage: catalina.sh ( commands ... )"
  echo "commands:"
  echo "  configtest [--strict]  Run a basic syntax check on server.xml"
  echo "  run                    Start pycat in the current window"
  echo "  start                  Start pycat in the background"
  echo "  stop [n] [-force]      Stop pycat, waiting up to n seconds (default 5), then kill with -force"
  echo "  version                What version of pycat are you running?"
  exit 1
fi

exec "$PYTHON" -m pycat "$@"
