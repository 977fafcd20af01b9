"""The Cluster rule set with the real Tribes channel classes (Tomcat's cluster-howto configuration)."""
from pycat.startup.digester import Digester
# pycat's own module: imported, never skipped, so a missing or broken module fails this file
from pycat.tribes.group.group_channel import GroupChannel

D = "startup_dummies:"
T = "org.apache.catalina.tribes."

XML = """<Server className="{d}Server"><Service className="{d}Service">
<Engine className="{d}Engine" name="Catalina" defaultHost="localhost">
  <Cluster className="{d}Generic" channelSendOptions="8">
    <Channel className="{t}group.GroupChannel" heartbeat="false">
      <Membership className="{t}membership.McastService" address="228.0.0.4" port="${{mcast.port:-45564}}"
                  frequency="500" dropTime="3000"/>
      <Receiver className="{t}transport.nio.NioReceiver" address="127.0.0.1" port="4000" autoBind="100"
                selectorTimeout="5000" maxThreads="6"/>
      <Sender className="{t}transport.ReplicationTransmitter">
        <Transport className="{t}transport.nio.PooledParallelSender"/>
      </Sender>
      <Interceptor className="{t}group.interceptors.TcpFailureDetector" connectTimeout="2000"/>
      <Interceptor className="{t}group.interceptors.MessageDispatchInterceptor"/>
      <Interceptor className="{t}group.interceptors.StaticMembershipInterceptor">
        <Member className="{d}Generic" host="127.0.0.1" port="4001"/>
        <LocalMember className="{d}Generic" host="127.0.0.1" port="4000"/>
      </Interceptor>
    </Channel>
  </Cluster>
</Engine></Service></Server>"""


def test_channel_is_assembled_in_document_order():
    d = Digester(properties={"mcast.port": "45999"})
    server = d.parse_string(XML.format(d=D, t=T), source="server.xml")
    engine = server.calls[0][1].calls[0][1]
    method, cluster = engine.calls[0]
    assert method == "set_cluster" and cluster.props == {"channelSendOptions": "8"}
    method, channel = cluster.calls[0]
    assert method == "set_channel" and type(channel) is GroupChannel
    assert channel.heartbeat_enabled is False
    assert type(channel.membership_service).__name__ == "McastService"
    assert type(channel.receiver).__name__ == "NioReceiver"
    assert channel.membership_service.port == 45999 and channel.membership_service.drop_time == 3000
    assert type(channel.sender).__name__ == "ReplicationTransmitter"
    assert type(channel.sender.transport).__name__ == "PooledParallelSender"
    assert [type(i).__name__ for i in channel.interceptors] == [
        "TcpFailureDetector", "MessageDispatchInterceptor", "StaticMembershipInterceptor"]
    assert channel.interceptors[0].connect_timeout == 2000
    static = channel.interceptors[2]
    assert [m.props["port"] for m in static.members] == ["4001"]
    assert static.local_member.props["port"] == "4000"
    assert d.warnings == [], d.warnings
