// Prints, for each key given on the command line, the partition that Kafka's own Java
// client picks for it (BuiltInPartitioner.partitionForKey, i.e. murmur2), one per line.
// Run with the broker's jars: java -cp '<libs>/*' PartitionOf.java <partitions> <key>...
import java.nio.charset.StandardCharsets;
import org.apache.kafka.clients.producer.internals.BuiltInPartitioner;

public class PartitionOf {
    public static void main(String[] args) {
        int partitions = Integer.parseInt(args[0]);
        for (int i = 1; i < args.length; i++) {
            byte[] key = args[i].getBytes(StandardCharsets.UTF_8);
            System.out.println(BuiltInPartitioner.partitionForKey(key, partitions));
        }
    }
}
