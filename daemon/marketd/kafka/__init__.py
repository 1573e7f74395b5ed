"""Kafka: the publisher, its partitioner and delivery rules, and hosting aiokafka in trio."""
