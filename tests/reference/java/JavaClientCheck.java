// The Java client (kafka-clients) against a Kafka-compatible broker: Admin creates a topic,
// an idempotent producer writes, a consumer group reads and commits (classic, or KIP-848's
// protocol with "consumer" as the third argument), a transactional producer commits one
// transaction and aborts another, and a read_committed consumer must see only the committed.
// One "OK ..." line per step; the first failure prints "FAIL ..." and exits 1.
// Run: java -cp '<cache>/clients/*' JavaClientCheck.java BOOTSTRAP TOPIC [classic|consumer]
import java.time.Duration;
import java.util.*;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.*;

public class JavaClientCheck {
    static void fail(String what) {
        System.out.println("FAIL " + what);
        System.exit(1);
    }

    static Properties consumerProps(String bootstrap, String group, String protocol, String isolation) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("group.id", group);
        p.put("group.protocol", protocol);
        p.put("auto.offset.reset", "earliest");
        p.put("enable.auto.commit", "false");
        p.put("isolation.level", isolation);
        p.put("key.deserializer", StringDeserializer.class.getName());
        p.put("value.deserializer", StringDeserializer.class.getName());
        return p;
    }

    static List<String> readAll(Properties props, String topic, int want, long deadlineMs) {
        List<String> got = new ArrayList<>();
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(props)) {
            c.subscribe(List.of(topic));
            long end = System.currentTimeMillis() + deadlineMs;
            while (got.size() < want && System.currentTimeMillis() < end) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) got.add(r.value());
            }
            // linger a little: nothing more may arrive (aborted records must stay hidden)
            long quiet = System.currentTimeMillis() + 1500;
            while (System.currentTimeMillis() < quiet) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) got.add(r.value());
            }
            c.commitSync();
        }
        return got;
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1];
        String protocol = args.length > 2 ? args[2] : "classic";
        Properties ap = new Properties();
        ap.put("bootstrap.servers", bootstrap);
        try (Admin admin = Admin.create(ap)) {
            admin.createTopics(List.of(new NewTopic(topic, 3, (short) 1))).all().get();
            System.out.println("OK created " + topic);

            Properties pp = new Properties();
            pp.put("bootstrap.servers", bootstrap);
            pp.put("key.serializer", StringSerializer.class.getName());
            pp.put("value.serializer", StringSerializer.class.getName());
            pp.put("enable.idempotence", "true");
            pp.put("acks", "all");
            try (KafkaProducer<String, String> p = new KafkaProducer<>(pp)) {
                for (int i = 0; i < 200; i++) p.send(new ProducerRecord<>(topic, "k" + (i % 13), "plain-" + i)).get();
            }
            System.out.println("OK produced 200 idempotent");

            String group = topic + "-g";
            List<String> got = readAll(consumerProps(bootstrap, group, protocol, "read_uncommitted"), topic, 200, 30000);
            if (got.size() != 200) fail("group read " + got.size() + " of 200");
            Map<TopicPartition, OffsetAndMetadata> committed =
                admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
            long sum = committed.values().stream().mapToLong(OffsetAndMetadata::offset).sum();
            if (sum != 200) fail("committed offsets sum " + sum);
            ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(group)).all().get().get(group);
            System.out.println("OK group " + protocol + " read 200, committed 200, state " + d.groupState()
                               + ", type " + d.type());

            pp.put("transactional.id", topic + "-txn");
            try (KafkaProducer<String, String> p = new KafkaProducer<>(pp)) {
                p.initTransactions();
                p.beginTransaction();
                for (int i = 0; i < 50; i++) p.send(new ProducerRecord<>(topic, "t" + i, "committed-" + i));
                p.commitTransaction();
                p.beginTransaction();
                for (int i = 0; i < 50; i++) p.send(new ProducerRecord<>(topic, "t" + i, "aborted-" + i));
                p.flush();
                p.abortTransaction();
            }
            System.out.println("OK transaction committed 50, aborted 50");

            List<String> rc = readAll(consumerProps(bootstrap, topic + "-rc", protocol, "read_committed"), topic, 250, 30000);
            long aborted = rc.stream().filter(v -> v.startsWith("aborted-")).count();
            long committedTxn = rc.stream().filter(v -> v.startsWith("committed-")).count();
            if (aborted != 0 || committedTxn != 50 || rc.size() != 250)
                fail("read_committed saw " + rc.size() + " records, " + committedTxn + " committed, " + aborted + " aborted");
            System.out.println("OK read_committed saw 250 records, no aborted one");
        }
    }
}
