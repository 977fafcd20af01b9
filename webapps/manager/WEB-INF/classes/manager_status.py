"""/manager/status and /manager/cluster (Tomcat's StatusManagerServlet, plus a cluster view Tomcat
lacks): each a JSON document (``/json``) and a small HTML page whose inline script polls it every
2 seconds (no build step, no external assets).

The dicts are built by ``pycat.startup.manager_api.server_status`` / ``cluster_status``, the same
functions behind ``pycat cluster status`` (the deploy channel's ``cluster-status`` command), so the
page and the command line show the same thing. They reach the container through public objects
only: the Host's Server (``host.get_server()``), its Services' connectors and Hosts, each
Context's manager, and each cluster's channel members, managers, valves and deployer.

Read-only: nothing here changes state, so no audit log and no nonce. Protection is web.xml's: BASIC,
roles manager-status, manager-gui or manager-script, and META-INF/context.xml's RemoteAddrValve.
``/manager/cluster/json`` asks the farm members for their inventories (as ``pycat farm list``
does); ``?farm=local`` (what the page polls) lists this node's farm records only.
"""
import html
import json
import logging

from pycat.startup.manager_api import cluster_status, server_status
from pycat.webapp.servlet import HttpServlet

log = logging.getLogger("pycat.manager")

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>%(title)s</title>
<style>
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em;margin:0 0 .3em} h2{font-size:1.1em;margin:1.2em 0 .4em}
table{border-collapse:collapse;margin:.3em 0 1em} td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}
th{background:#eef} .num{text-align:right} #err{color:#a00} small{color:#666}
</style></head><body>
<h1>%(title)s</h1><small>%(nav)s &middot; updated every 2 s &middot; <span id="when">loading</span>
<span id="err"></span></small>
<div id="out"></div>
<script>
"use strict";
var URL_ = %(url)s;
function esc(v){return String(v===null||v===undefined?"":v).replace(/[&<>"']/g,function(c){
  return {"&":"&amp;","<":"&lt;",">":"&gt;","\\"":"&quot;","'":"&#39;"}[c];});}
function table(rows, cols){
  if(!rows||!rows.length) return "<p><small>none</small></p>";
  var h="<table><tr>"+cols.map(function(c){return "<th>"+esc(c[0])+"</th>";}).join("")+"</tr>";
  rows.forEach(function(r){h+="<tr>"+cols.map(function(c){var v=c[1](r);
    return "<td"+(typeof v==="number"?" class=num":"")+">"+esc(v)+"</td>";}).join("")+"</tr>";});
  return h+"</table>";}
function kv(o){return Object.keys(o||{}).map(function(k){return k+"="+o[k];}).join(" ");}
function secs(ms){return ms===null||ms===undefined?"":(ms/1000).toFixed(1)+" s";}
%(render)s
function poll(){
  var x=new XMLHttpRequest(); x.open("GET",URL_);
  x.onload=function(){
    if(x.status!==200){document.getElementById("err").textContent=" HTTP "+x.status;return;}
    document.getElementById("err").textContent="";
    document.getElementById("out").innerHTML=render(JSON.parse(x.responseText));
    document.getElementById("when").textContent=new Date().toLocaleTimeString();};
  x.onerror=function(){document.getElementById("err").textContent=" (node unreachable)";};
  x.send();}
poll(); setInterval(poll,2000);
</script></body></html>
"""

STATUS_RENDER = """
function render(d){
  var h="<h2>Server</h2>"+table([d],[["Server",function(r){return r.server_info;}],["PID",function(r){return r.pid;}],
    ["Uptime",function(r){return r.uptime_seconds.toFixed(0)+" s";}],
    ["RSS",function(r){return r.rss_bytes===null?"?":(r.rss_bytes/1048576).toFixed(1)+" MiB";}],
    ["Greenlets",function(r){return r.greenlets;}]]);
  var stat=[["Requests",function(r){return r.requests;}],["Errors",function(r){return r.errors;}],
    ["Bytes sent",function(r){return r.bytes_sent;}],["Avg ms",function(r){return r.avg_ms;}],
    ["Max ms",function(r){return r.max_ms;}]];
  h+="<h2>Connectors</h2>"+table(d.connectors,[["Protocol",function(r){return r.protocol;}],
    ["Port",function(r){return r.port;}],["State",function(r){return r.state;}],
    ["Connections",function(r){return r.open_connections;}],["Busy workers",function(r){return r.busy_workers;}]].concat(stat));
  function s(k){return function(r){return r.sessions?r.sessions[k]:"";};}
  h+="<h2>Applications</h2>"+table(d.apps,[["Path",function(r){return r.path+(r.version?"##"+r.version:"");}],
    ["State",function(r){return r.state;}]].concat(stat).concat([["Sessions",s("active")],["Created",s("created")],
    ["Expired",s("expired")],["Rejected",s("rejected")]]));
  return h;}
"""

CLUSTER_RENDER = """
function render(d){
  if(!d.clusters.length) return "<p>This node has no &lt;Cluster&gt;.</p>";
  var h="";
  d.clusters.forEach(function(c){
    h+="<h2>Cluster "+esc(c.name)+" <small>("+esc(c.state)+", in "+esc(c.container)+")</small></h2>";
    var ms=[c.local_member].concat(c.members).filter(function(m){return m;});
    h+=table(ms,[["Member",function(m){return m.name+(m.local?" (this node)":"");}],
      ["Domain",function(m){return m.domain;}],["Alive",function(m){return secs(m.alive_ms);}],
      ["Id",function(m){return m.id.slice(0,12);}]]);
    h+="<h3>Distributable applications</h3>"+table(c.managers,[["Manager",function(r){return r.name;}],
      ["Class",function(r){return r["class"].split(".").pop();}],
      ["Sessions here",function(r){return r.sessions?r.sessions.active:"";}],
      ["Roles",function(r){return r.roles?kv(r.roles):"";}],
      ["State transfer",function(r){return r.state_transfer_seconds===undefined||r.state_transfer_seconds===null?""
        :(r.state_transfer_seconds*1000).toFixed(0)+" ms";}],
      ["Counters",function(r){return kv(r.counters);}]]);
    h+="<h3>Valves</h3>"+table(c.valves,[["Valve",function(v){return v["class"].split(".").pop();}],
      ["Enabled",function(v){return v.enabled===undefined?"":v.enabled;}]]);
    if(c.farm){h+="<h3>Farm</h3>"+(c.farm.error?"<p>"+esc(c.farm.error)+"</p>":table(c.farm.wars,[
      ["WAR",function(w){return w.war;}],["Version",function(w){return w.version;}],["Bytes",function(w){return w.size;}],
      ["Running here",function(w){return w.running;}]]));}
  });
  return h;}
"""

NAV = '<a href="BASE/status">status</a> &middot; <a href="BASE/cluster">cluster</a>'


class _JsonPageServlet(HttpServlet):
    title = ""
    render = ""

    def build(self, request):
        raise NotImplementedError

    @property
    def server(self):
        return self.servlet_context.parent.get_server()

    def do_get(self, request, response):
        response.set_header("Cache-Control", "no-store")
        response.set_header("X-Content-Type-Options", "nosniff")
        if (request.path_info or "") in ("/json", "/json/"):
            try:
                body = json.dumps(self.build(request), default=str)
            except Exception:
                log.exception("Manager: building %s failed", request.request_uri)
                response.send_error(500)
                return
            response.content_type = "application/json;charset=utf-8"
            response.write(body)
            return
        if request.path_info not in (None, "", "/"):
            response.send_error(404)
            return
        # the page polls <servlet path>/json
        base = request.context_path or ""
        url = base + request.servlet_path + "/json" + ("?farm=local" if self.farm_param else "")
        response.content_type = "text/html;charset=utf-8"
        response.set_header("Content-Security-Policy",
                            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                            "connect-src 'self'")
        response.write(PAGE % {"title": self.title, "nav": NAV.replace("BASE", html.escape(base)),
                               "url": json.dumps(url).replace("<", "\\u003c"), "render": self.render})

    farm_param = False


class StatusServlet(_JsonPageServlet):
    title = "pycat server status"
    render = STATUS_RENDER

    def build(self, request):
        return server_status(self.server)


class ClusterServlet(_JsonPageServlet):
    title = "pycat cluster status"
    render = CLUSTER_RENDER
    farm_param = True

    def build(self, request):
        return cluster_status(self.server, farm_members=request.get_parameter("farm") != "local")
