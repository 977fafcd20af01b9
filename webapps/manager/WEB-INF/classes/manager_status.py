"""/manager/status and /manager/cluster (Tomcat's StatusManagerServlet, plus a cluster view Tomcat
lacks): each a JSON document (``/json``) and a small HTML page whose inline script polls it every
2 seconds (no build step, no external assets).

The dicts are built by ``pycat.startup.manager_api.server_status`` / ``cluster_status``, the same
functions behind ``pycat cluster status`` (the deploy channel's ``cluster-status`` command), so the
page and the command line show the same thing. They reach the container through public objects
only: the Host's Server (``host.get_server()``), its Services' connectors and Hosts, each
Context's manager, and each cluster's channel members, managers, valves and deployer.

Reading is open to the roles manager-status, manager-gui and manager-script (web.xml: BASIC, and
META-INF/context.xml's RemoteAddrValve). ``/manager/cluster/json`` asks the farm members for their
inventories (as ``pycat farm list`` does); ``?farm=local`` (what the page polls) lists this node's
farm records only.

One action changes state: POST /manager/cluster/turnover (``enabled=true|false``), the cluster
how-to's "turnover mode": this node's JvmRouteBinderValve on or off (manager_api.set_turnover).
web.xml lets only manager-gui POST here, and the CSRF filter (csrf_filter.py) wants a nonce of the
user's session, which the page puts into the form's URL; every change is logged with the user and
the client address. It acts on this node only: each node that should take over sessions is set
through its own manager (or ``cluster-turnover`` on its deploy channel).

The cluster page also draws the members (an inline SVG its script builds from the JSON): this node
in the middle, highlighted, a line to each member it sees, colours for the state.
"""
import html
import json
import logging

from pycat.errors import DeployError
from pycat.startup.manager_api import cluster_status, server_status, set_turnover, turnover_state
from pycat.webapp.servlet import HttpServlet

from csrf_filter import NONCE_NAME

log = logging.getLogger("pycat.manager")

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>%(title)s</title>
<style>
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em;margin:0 0 .3em} h2{font-size:1.1em;margin:1.2em 0 .4em}
table{border-collapse:collapse;margin:.3em 0 1em} td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}
th{background:#eef} .num{text-align:right} #err{color:#a00} small{color:#666}
#message{white-space:pre-wrap;font-family:ui-monospace,monospace;padding:.4em .6em;border:1px solid #7a7;
  background:#f6f6f6;margin:.6em 0} #message.fail{border-color:#c66;background:#fdf2f2}
#turnover{margin:.6em 0} svg text{font:11px system-ui,sans-serif}
</style></head><body>
<h1>%(title)s</h1><small>%(nav)s &middot; updated every 2 s &middot; <span id="when">loading</span>
<span id="err"></span></small>
%(top)s
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
    var d=JSON.parse(x.responseText);
    document.getElementById("out").innerHTML=render(d);
    if(typeof after==="function") after(d);
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
  d.clusters.forEach(function(c,i){
    h+="<h2>Cluster "+esc(c.name)+" <small>("+esc(c.state)+", in "+esc(c.container)+")</small></h2>";
    var ms=[c.local_member].concat(c.members).filter(function(m){return m;});
    h+=table(ms,[["Member",function(m){return m.name+(m.local?" (this node)":"");}],
      ["Domain",function(m){return m.domain;}],["Alive",function(m){return secs(m.alive_ms);}],
      ["Id",function(m){return m.id.slice(0,12);}]]);
    h+=picture(c,i);
    h+="<h3>Distributable applications</h3>"+table(c.managers,[["Manager",function(r){return r.name;}],
      ["Class",function(r){return r["class"].split(".").pop();}],
      ["Sessions here",function(r){return r.sessions?r.sessions.active:"";}],
      ["Roles",function(r){return r.roles?kv(r.roles):"";}],
      ["State transfer",function(r){return r.state_transfer_seconds===undefined||r.state_transfer_seconds===null?""
        :(r.state_transfer_seconds*1000).toFixed(0)+" ms";}],
      ["Avg replication",function(r){return r.replications?r.avg_replication_ms.toFixed(2)+" ms ("+r.replications+")":"";}],
      ["Counters",function(r){return kv(r.counters);}]]);
    h+="<h3>Valves</h3>"+table(c.valves,[["Valve",function(v){return v["class"].split(".").pop();}],
      ["Enabled",function(v){return v.enabled===undefined?"":v.enabled;}]]);
    if(c.farm){h+="<h3>Farm</h3>"+(c.farm.error?"<p>"+esc(c.farm.error)+"</p>":table(c.farm.wars,[
      ["WAR",function(w){return w.war;}],["Version",function(w){return w.version;}],["Bytes",function(w){return w.size;}],
      ["Running here",function(w){return w.running;}]]));}
  });
  return h;}
// the members: this node in the middle (class "member self", thick outline), the members it sees
// around it with a line to each; green: in the membership (yellow: up for less than 10 s),
// grey: this node's cluster is not started
function picture(c,i){
  var ms=[c.local_member].concat(c.members).filter(function(m){return m;});
  if(!ms.length) return "";
  // one or two nodes side by side; more: the others on an ellipse around this one
  var n=ms.length, ring=n>2, W=ring?480:(n>1?480:320), H=ring?260:110, cx=ring||n<2?W/2:W/2-120, cy=ring?H/2:40;
  function xy(k){if(k===0) return [cx,cy];
    if(!ring) return [W/2+120,cy];
    var a=2*Math.PI*(k-1)/(n-1); return [cx+Math.cos(a)*(W/2-90), cy+Math.sin(a)*(H/2-45)];}
  function colour(m,k){if(k===0) return c.state==="STARTED"?"#3a3":"#999";
    return m.alive_ms!==null&&m.alive_ms<10000?"#db3":"#3a3";}
  var id=i?"members-picture-"+(i+1):"members-picture";
  var s='<svg id="'+id+'" width="'+W+'" height="'+H+'" viewBox="0 0 '+W+' '+H+'" role="img" aria-label="cluster members">';
  for(var k=1;k<n;k++){var q=xy(k);
    s+='<line class="link" x1="'+cx+'" y1="'+cy+'" x2="'+q[0].toFixed(1)+'" y2="'+q[1].toFixed(1)+'" stroke="#89a" stroke-width="2"/>';}
  ms.forEach(function(m,k){var p=xy(k), self=k===0, x=p[0].toFixed(1);
    var sub=self?(m.route?"route "+m.route+", this node":"this node"):(m.domain||"");
    s+='<g class="member'+(self?' self':'')+'" data-name="'+esc(m.name)+'"><title>'+esc(m.name)+'</title>'+
      '<circle cx="'+x+'" cy="'+p[1].toFixed(1)+'" r="'+(self?22:16)+'" fill="'+colour(m,k)+'" stroke="'+
      (self?'#036':'#555')+'" stroke-width="'+(self?4:1.5)+'"/>'+
      '<text x="'+x+'" y="'+(p[1]+(self?36:30)).toFixed(1)+'" text-anchor="middle">'+esc(m.host+":"+m.port)+'</text>'+
      (sub?'<text x="'+x+'" y="'+(p[1]+(self?49:43)).toFixed(1)+'" text-anchor="middle" fill="#555">'+esc(sub)+'</text>':'')+
      '</g>';});
  return s+'</svg><br><small>thick outline: this node; green: a member it sees (yellow: up for less than 10 s); '+
    'grey: the cluster is not started</small>';}
// the turnover form follows the JSON (another user, or the deploy channel, may switch it)
function after(d){
  var f=document.getElementById("turnover"); if(!f) return;
  var on=d.turnover;
  document.getElementById("turnover-state").textContent=on===null?"no JvmRouteBinderValve":(on?"on":"off");
  f.elements.enabled.value=on?"false":"true";
  document.getElementById("turnover-submit").textContent=on?"Disable turnover mode":"Enable turnover mode";}
"""

NAV = ('<a href="BASE/html">applications</a> &middot; <a href="BASE/status">status</a> &middot; '
       '<a href="BASE/cluster">cluster</a>')

PAGE_CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


class _JsonPageServlet(HttpServlet):
    title = ""
    render = ""
    farm_param = False

    def build(self, request):
        raise NotImplementedError

    def top(self, request, message):
        """HTML between the title and the polled part (the cluster page's form and message)."""
        return ""

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
        self.page(request, response, "")

    def page(self, request, response, message):
        # the page polls <servlet path>/json
        base = request.context_path or ""
        url = base + request.servlet_path + "/json" + ("?farm=local" if self.farm_param else "")
        response.content_type = "text/html;charset=utf-8"
        response.set_header("Cache-Control", "no-store")
        response.set_header("X-Content-Type-Options", "nosniff")
        response.set_header("X-Frame-Options", "DENY")
        response.set_header("Referrer-Policy", "no-referrer")
        response.set_header("Content-Security-Policy", PAGE_CSP)
        response.write(PAGE % {"title": self.title, "nav": NAV.replace("BASE", html.escape(base)),
                               "top": self.top(request, message),
                               "url": json.dumps(url).replace("<", "\\u003c"), "render": self.render})


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

    def top(self, request, message):
        parts = []
        if message:
            parts.append('<div id="message" class="%s">%s</div>'
                         % ("fail" if message.startswith("FAIL") else "ok", html.escape(message)))
        if request.is_user_in_role("manager-gui"):
            # the current state, as the JSON will say it (the page's script keeps it in step)
            state = turnover_state(self.server)
            action = (request.context_path or "") + request.servlet_path + "/turnover"
            nonce = request.get_attribute(NONCE_NAME)
            if nonce:
                action += "?%s=%s" % (NONCE_NAME, nonce)
            parts.append(
                '<form id="turnover" method="post" action="%s">'
                '<input type="hidden" name="enabled" value="%s">'
                'Turnover mode (this node\'s JvmRouteBinderValve takes over sessions of a node about to '
                'be stopped): <b id="turnover-state">%s</b> '
                '<button id="turnover-submit" type="submit">%s</button></form>'
                % (html.escape(action), "false" if state else "true",
                   "no JvmRouteBinderValve" if state is None else ("on" if state else "off"),
                   "Disable turnover mode" if state else "Enable turnover mode"))
        return "\n".join(parts)

    def do_post(self, request, response):
        """POST /turnover with enabled=true|false (see the module doc); answers the page."""
        if (request.path_info or "") != "/turnover":
            response.send_error(404)
            return
        value = (request.get_parameter("enabled") or "").strip().lower()
        shown = value[:40].encode("unicode_escape").decode("ascii")     # client text into a log line
        what = "turnover(%s)" % shown
        if value not in ("true", "false"):
            message = "FAIL - The enabled parameter must be true or false, not [%s]" % shown
        else:
            on = value == "true"
            try:
                count = set_turnover(self.server, on)
                message = ("OK - Turnover mode %s: %d JvmRouteBinderValve(s) %s on this node"
                           % ("on" if on else "off", count, "enabled" if on else "disabled"))
            except DeployError as exc:
                message = "FAIL - %s" % exc
        addr, peer = request.remote_addr, request.peer_addr
        source = addr if peer in (None, "", addr) else "%s (via %s)" % (addr, peer)
        log.info("Manager: %s by user [%s] from [%s]: %s", what, request.remote_user, source, message)
        self.page(request, response, message)
