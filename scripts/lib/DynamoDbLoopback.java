// Starts the official DynamoDB Local bound to 127.0.0.1 instead of every interface.
//
// DynamoDB Local has no host option: its Jetty server listens on 0.0.0.0. This
// launcher builds the server exactly as DynamoDBLocal.jar's own main does, then
// sets the host of each Jetty connector before starting it. Run as a Java 17
// single-file program: java -cp 'DynamoDBLocal.jar:DynamoDBLocal_lib/*' DynamoDbLoopback.java -port N -inMemory
import com.amazonaws.services.dynamodbv2.local.main.ServerRunner;
import com.amazonaws.services.dynamodbv2.local.server.DynamoDBProxyServer;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;

public class DynamoDbLoopback {
    public static void main(String[] args) throws Exception {
        String host = System.getProperty("dynamodb.host", "127.0.0.1");
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
        java.lang.reflect.Field field = DynamoDBProxyServer.class.getDeclaredField("server");
        field.setAccessible(true);
        Server jetty = (Server) field.get(proxy);
        for (Connector connector : jetty.getConnectors()) {
            ((ServerConnector) connector).setHost(host);
        }
        proxy.start();
        System.out.println("DynamoDB Local listening on " + host);
        proxy.join();
    }
}
