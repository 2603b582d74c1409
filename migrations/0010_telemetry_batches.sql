CREATE TABLE "telemetry_batches" (
	"site_id" text NOT NULL,
	"stream" text NOT NULL,
	"seq" bigint NOT NULL,
	"rows" integer NOT NULL,
	"committed_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX "telemetry_batches_key_idx" ON "telemetry_batches" USING btree ("site_id","stream","seq");--> statement-breakpoint
CREATE INDEX "telemetry_batches_committed_at_idx" ON "telemetry_batches" USING btree ("committed_at");