// Command goclient is a third client implementation against a Kafka-compatible broker:
// franz-go creates a topic, produces records with an idempotent producer, reads them back
// in a consumer group (the classic protocol),
// commits, and checks the group's committed offsets through kadm. It prints one line per
// step and exits non-zero on the first failure. tests/reference/test_clients.py builds it
// into a cache folder and runs it against Moldau (and Kafka, for comparison).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func fail(format string, args ...any) {
	fmt.Printf("FAIL "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	bootstrap := flag.String("bootstrap", "127.0.0.1:9092", "broker address")
	topic := flag.String("topic", "go-ref", "topic to create")
	group := flag.String("group", "go-ref-group", "consumer group")
	count := flag.Int("count", 300, "records to produce")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	admClient, err := kgo.NewClient(kgo.SeedBrokers(*bootstrap))
	if err != nil {
		fail("client: %v", err)
	}
	defer admClient.Close()
	adm := kadm.NewClient(admClient)
	created, err := adm.CreateTopic(ctx, 3, 1, nil, *topic)
	if err != nil || created.Err != nil {
		fail("create topic: %v %v", err, created.Err)
	}
	fmt.Println("OK created", *topic, "3 partitions")

	producer, err := kgo.NewClient(kgo.SeedBrokers(*bootstrap), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		fail("producer: %v", err)
	}
	for i := 0; i < *count; i++ {
		producer.Produce(ctx, &kgo.Record{Topic: *topic, Key: []byte(fmt.Sprintf("k%d", i%17)),
			Value: []byte(fmt.Sprintf("v%d", i))}, func(_ *kgo.Record, err error) {
			if err != nil {
				fail("produce: %v", err)
			}
		})
	}
	if err := producer.Flush(ctx); err != nil {
		fail("flush: %v", err)
	}
	producer.Close()
	fmt.Println("OK produced", *count)

	opts := []kgo.Opt{kgo.SeedBrokers(*bootstrap), kgo.ConsumerGroup(*group), kgo.ConsumeTopics(*topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit()}
	consumer, err := kgo.NewClient(opts...)
	if err != nil {
		fail("consumer: %v", err)
	}
	seen := map[string]bool{}
	for len(seen) < *count {
		fetches := consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			fail("consumed %d of %d before the deadline", len(seen), *count)
		}
		fetches.EachError(func(t string, p int32, err error) { fail("fetch %s[%d]: %v", t, p, err) })
		fetches.EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
	}
	if err := consumer.CommitUncommittedOffsets(ctx); err != nil {
		fail("commit: %v", err)
	}
	fmt.Println("OK consumed", len(seen), "in group", *group)
	consumer.Close()

	offsets, err := adm.FetchOffsets(ctx, *group)
	if err != nil {
		fail("fetch offsets: %v", err)
	}
	total := int64(0)
	offsets.Each(func(o kadm.OffsetResponse) { total += o.At })
	if total != int64(*count) {
		fail("committed offsets sum to %d, want %d", total, *count)
	}
	described, err := adm.DescribeGroups(ctx, *group)
	if err != nil {
		fail("describe group: %v", err)
	}
	fmt.Println("OK committed", total, "group state", described[*group].State)
}
