// A real Tomcat Tribes peer for pycat's interop test (tests/tribes/test_interop_java.py).
//
// Usage: java -cp tomcat-tribes.jar:tomcat-juli.jar:. TribesPeer <mcastPort>
// Starts a GroupChannel (McastService 228.0.0.4:<mcastPort> bound to 127.0.0.1, NioReceiver on
// 127.0.0.1, interceptors TcpFailureDetector + MessageDispatchInterceptor as in the seed howto)
// and speaks a line protocol:
//   stdout: "STARTED tcp://host:port", "ADDED tcp://host:port", "GONE tcp://host:port",
//           "RECV <options> <hex payload> FROM tcp://host:port", "SENT", "ERROR <text>", "STOPPED"
//   stdin:  "send <options> <hex payload>"  (a ByteMessage to every member), "stop",
//           "encrypt <algorithm> <hex key> <hex payload>" -> "ENC <hex message field>",
//           "decrypt <algorithm> <hex key> <hex message field>" -> "DEC <hex payload>" (or "DEC none")
//           (Tomcat's EncryptInterceptor run in isolation, to check pycat's wire format)
// A received payload equal to the ASCII bytes "fail" makes the listener throw, so a sync-ack
// sender sees FAIL_ACK.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.Serializable;
import java.util.HexFormat;

import org.apache.catalina.tribes.ByteMessage;
import org.apache.catalina.tribes.Channel;
import org.apache.catalina.tribes.ChannelMessage;
import org.apache.catalina.tribes.group.ChannelInterceptorBase;
import org.apache.catalina.tribes.group.InterceptorPayload;
import org.apache.catalina.tribes.group.interceptors.EncryptInterceptor;
import org.apache.catalina.tribes.io.ChannelData;
import org.apache.catalina.tribes.io.XByteBuffer;
import org.apache.catalina.tribes.ChannelListener;
import org.apache.catalina.tribes.Member;
import org.apache.catalina.tribes.MembershipListener;
import org.apache.catalina.tribes.group.GroupChannel;
import org.apache.catalina.tribes.group.interceptors.MessageDispatchInterceptor;
import org.apache.catalina.tribes.group.interceptors.TcpFailureDetector;
import org.apache.catalina.tribes.membership.McastService;
import org.apache.catalina.tribes.transport.nio.NioReceiver;

public class TribesPeer {
    static synchronized void out(String line) {
        System.out.println(line);
        System.out.flush();
    }

    // Member.getName() prints remote hosts as byte arrays ("tcp://{127, 0, 0, 1}:4000"); use dotted form
    static String name(Member m) {
        try {
            return "tcp://" + java.net.InetAddress.getByAddress(m.getHost()).getHostAddress() + ":" + m.getPort();
        } catch (java.net.UnknownHostException e) {
            return m.getName();
        }
    }

    static String crypt(boolean encrypt, String algorithm, String key, byte[] data) throws Exception {
        EncryptInterceptor crypto = new EncryptInterceptor();
        crypto.setEncryptionAlgorithm(algorithm);
        crypto.setEncryptionKey(key);
        final byte[][] result = new byte[1][];
        crypto.setNext(new ChannelInterceptorBase() {
            @Override
            public void sendMessage(Member[] destination, ChannelMessage msg, InterceptorPayload payload) {
                result[0] = msg.getMessage().getBytes();
            }
        });
        crypto.setPrevious(new ChannelInterceptorBase() {
            @Override
            public void messageReceived(ChannelMessage msg) {
                result[0] = msg.getMessage().getBytes();
            }
        });
        crypto.start(Channel.DEFAULT);
        ChannelData message = new ChannelData(true);
        message.setMessage(new XByteBuffer(data, false));
        if (encrypt) {
            crypto.sendMessage(new Member[0], message, null);
            return "ENC " + HexFormat.of().formatHex(result[0]);
        }
        crypto.messageReceived(message);
        return "DEC " + (result[0] == null ? "none" : HexFormat.of().formatHex(result[0]));
    }

    public static void main(String[] args) throws Exception {
        int mcastPort = Integer.parseInt(args[0]);
        GroupChannel channel = new GroupChannel();
        McastService mcast = (McastService) channel.getMembershipService();
        mcast.setAddress("228.0.0.4");
        mcast.setPort(mcastPort);
        mcast.setBind("127.0.0.1");
        mcast.setFrequency(200);
        mcast.setDropTime(2000);
        NioReceiver receiver = (NioReceiver) channel.getChannelReceiver();
        receiver.setAddress("127.0.0.1");
        receiver.setPort(args.length > 1 ? Integer.parseInt(args[1]) : 4000);
        receiver.setAutoBind(100);
        // the seed howto's stack: TCP-verified membership and asynchronous dispatch
        channel.addInterceptor(new TcpFailureDetector());
        channel.addInterceptor(new MessageDispatchInterceptor());
        channel.addMembershipListener(new MembershipListener() {
            @Override
            public void memberAdded(Member member) {
                out("ADDED " + name(member));
            }

            @Override
            public void memberDisappeared(Member member) {
                out("GONE " + name(member));
            }
        });
        channel.addChannelListener(new ChannelListener() {
            @Override
            public boolean accept(Serializable msg, Member sender) {
                return msg instanceof ByteMessage;
            }

            @Override
            public void messageReceived(Serializable msg, Member sender) {
                byte[] data = ((ByteMessage) msg).getMessage();
                out("RECV " + HexFormat.of().formatHex(data) + " FROM " + name(sender));
                if ("fail".equals(new String(data, java.nio.charset.StandardCharsets.US_ASCII))) {
                    throw new IllegalStateException("asked to fail");
                }
            }
        });
        channel.start(GroupChannel.DEFAULT);
        out("STARTED " + name(channel.getLocalMember(false)));
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        String line;
        while ((line = in.readLine()) != null) {
            String[] parts = line.trim().split(" ");
            try {
                if (parts[0].equals("send")) {
                    int options = Integer.parseInt(parts[1]);
                    byte[] data = parts.length > 2 ? HexFormat.of().parseHex(parts[2]) : new byte[0];
                    channel.send(channel.getMembers(), new ByteMessage(data), options);
                    out("SENT");
                } else if (parts[0].equals("encrypt") || parts[0].equals("decrypt")) {
                    out(crypt(parts[0].equals("encrypt"), parts[1], parts[2], HexFormat.of().parseHex(parts[3])));
                } else if (parts[0].equals("stop")) {
                    break;
                }
            } catch (Exception e) {
                out("ERROR " + e.toString().replace('\n', ' '));
            }
        }
        channel.stop(GroupChannel.DEFAULT);
        out("STOPPED");
        System.exit(0);
    }
}
