// A Kafka Streams application with exactly-once v2 against a Kafka-compatible broker: a
// word count (a KTable with a RocksDB store and its changelog topic) from an input topic
// to an output topic, processing.guarantee=exactly_once_v2. It writes the lines itself,
// reads the output with read_committed until every word has its final count, checks the
// changelog topic exists, and prints "OK ..." lines, or "FAIL ..." and exits 1.
// Run: java -cp '<cache>/clients/*' WordCountEos.java BOOTSTRAP APP_ID STATE_DIR
import java.time.Duration;
import java.util.*;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.serialization.*;
import org.apache.kafka.streams.*;
import org.apache.kafka.streams.kstream.*;

public class WordCountEos {
    static void fail(String what) {
        System.out.println("FAIL " + what);
        System.exit(1);
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], app = args[1], stateDir = args[2];
        String input = app + "-in", output = app + "-out";
        Properties ap = new Properties();
        ap.put("bootstrap.servers", bootstrap);
        try (Admin admin = Admin.create(ap)) {
            admin.createTopics(List.of(new NewTopic(input, 2, (short) 1), new NewTopic(output, 2, (short) 1))).all().get();
        }
        String[] lines = {"the quick brown fox", "the lazy dog", "the fox jumps", "a dog and a fox"};
        Map<String, Long> expected = new TreeMap<>();
        for (String line : lines) for (String w : line.split(" ")) expected.merge(w, 1L, Long::sum);

        Properties sp = new Properties();
        sp.put(StreamsConfig.APPLICATION_ID_CONFIG, app);
        sp.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        sp.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        sp.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
        sp.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 200);
        sp.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
        sp.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.String().getClass());
        sp.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.String().getClass());
        sp.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");
        StreamsBuilder b = new StreamsBuilder();
        b.<String, String>stream(input)
            .flatMapValues(v -> Arrays.asList(v.toLowerCase().split(" ")))
            .groupBy((k, w) -> w)
            .count(Materialized.as("counts"))
            .toStream()
            .to(output, Produced.with(Serdes.String(), Serdes.Long()));
        long t0 = System.currentTimeMillis();
        KafkaStreams streams = new KafkaStreams(b.build(), sp);
        streams.start();
        long end = System.currentTimeMillis() + 60000;
        while (streams.state() != KafkaStreams.State.RUNNING && System.currentTimeMillis() < end) Thread.sleep(100);
        if (streams.state() != KafkaStreams.State.RUNNING) fail("streams state " + streams.state());
        System.out.println("OK streams running after " + (System.currentTimeMillis() - t0) + " ms");

        Properties pp = new Properties();
        pp.put("bootstrap.servers", bootstrap);
        pp.put("key.serializer", StringSerializer.class.getName());
        pp.put("value.serializer", StringSerializer.class.getName());
        try (KafkaProducer<String, String> p = new KafkaProducer<>(pp)) {
            for (int i = 0; i < lines.length; i++) p.send(new ProducerRecord<>(input, "line" + i, lines[i])).get();
        }

        Properties cp = new Properties();
        cp.put("bootstrap.servers", bootstrap);
        cp.put("group.id", app + "-reader");
        cp.put("auto.offset.reset", "earliest");
        cp.put("isolation.level", "read_committed");
        cp.put("key.deserializer", StringDeserializer.class.getName());
        cp.put("value.deserializer", LongDeserializer.class.getName());
        Map<String, Long> latest = new TreeMap<>();
        try (KafkaConsumer<String, Long> c = new KafkaConsumer<>(cp)) {
            c.subscribe(List.of(output));
            while (!latest.equals(expected) && System.currentTimeMillis() < end + 30000) {
                for (ConsumerRecord<String, Long> r : c.poll(Duration.ofMillis(200))) latest.put(r.key(), r.value());
            }
        }
        if (!latest.equals(expected)) fail("counts " + latest + " want " + expected);
        System.out.println("OK word counts " + latest);
        streams.close(Duration.ofSeconds(20));
        try (Admin admin = Admin.create(ap)) {
            Set<String> names = admin.listTopics().names().get();
            String changelog = app + "-counts-changelog";
            if (!names.contains(changelog)) fail("no changelog topic " + changelog + " in " + names);
            if (!names.contains(app + "-counts-repartition")) fail("no repartition topic in " + names);
            System.out.println("OK changelog and repartition topics " + changelog);
        }
    }
}
