// Dumps every broker config key of the Kafka on the classpath as TSV (the fact table klab compiles in:
// src/broker/kafka-4.1-broker-configs.tsv).
//
// Run (JDK 11+ single-file source mode; nothing to compile):
//   H=$(scripts/kafka-home --version 4.1.2)
//   java -Dlog4j2.configurationFile=$H/config/tools-log4j2.properties -cp "$H/libs/*" \
//       scripts/gen-broker-configs.java src/broker/kafka-4.1-broker-configs.tsv
// (without the output path argument it writes to stdout).
//
// Source of truth, as in Kafka's own docs generator (kafka.server.KafkaConfig$.main, which prints
// KafkaConfig.configDef().toHtml(4, ..., DynamicBrokerConfig.dynamicConfigUpdateModes())):
//   - keys, types, defaults, validators: kafka.server.KafkaConfig.configDef()
//     (= org.apache.kafka.server.config.AbstractKafkaConfig.CONFIG_DEF)
//   - dynamic update mode: DynamicBrokerConfig.dynamicConfigUpdateModes(); a key not in that map is
//     "read-only" (what ConfigDef.toHtml prints).
//
// Columns: name, type (ConfigDef.Type, lower case), default, dynamic (read-only | per-broker |
// cluster-wide), valid (the validator's toString, empty if none or if it is a lambda without a
// toString).
// default: empty = no default (the key is required); "null" = default null; "" (two double quotes) =
// default is the empty string or empty list; otherwise ConfigDef.convertToString(default, type)
// (lists comma-separated, classes by name), as in Kafka's docs table but without the "(1 gigabyte)"
// style suffixes.
// Internal keys (ConfigDef.ConfigKey.internalConfig, left out of Kafka's docs) are included: the broker
// accepts them.
// Escapes in values: backslash -> \\, tab -> \t, newline -> \n, carriage return -> \r.
// Rows are sorted by name; the first line is the header.

import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.TreeMap;
import java.util.Locale;
import org.apache.kafka.common.config.ConfigDef;

public class GenBrokerConfigs {
    static String esc(String s) {
        return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r");
    }

    static String defaultOf(ConfigDef.ConfigKey k) {
        if (!k.hasDefault()) return "";
        if (k.defaultValue == null) return "null";
        String s = ConfigDef.convertToString(k.defaultValue, k.type);
        return s.isEmpty() ? "\"\"" : s;
    }

    static String validOf(ConfigDef.ConfigKey k) {
        if (k.validator == null) return "";
        String s = String.valueOf(k.validator);
        // Lambdas and classes without toString print Class@hash: not a fact, and not stable.
        if (s.contains("$$Lambda") || s.matches("^[\\w.$]+@[0-9a-f]+$")) return "";
        return s;
    }

    public static void main(String[] args) throws Exception {
        ConfigDef def = kafka.server.KafkaConfig$.MODULE$.configDef();
        Map<String, String> modes = kafka.server.DynamicBrokerConfig$.MODULE$.dynamicConfigUpdateModes();
        TreeMap<String, ConfigDef.ConfigKey> keys = new TreeMap<>(def.configKeys());

        for (String name : new TreeMap<>(modes).keySet())
            if (!keys.containsKey(name))
                System.err.println("note: dynamic key not in the ConfigDef (skipped): " + name);

        PrintStream out = args.length > 0
            ? new PrintStream(new java.io.FileOutputStream(args[0]), false, StandardCharsets.UTF_8)
            : new PrintStream(System.out, false, StandardCharsets.UTF_8);
        out.print("name\ttype\tdefault\tdynamic\tvalid\n");
        for (ConfigDef.ConfigKey k : keys.values()) {
            String mode = modes.getOrDefault(k.name, "read-only");
            out.print(esc(k.name) + "\t" + esc(k.type.toString().toLowerCase(Locale.ROOT)) + "\t"
                + esc(defaultOf(k)) + "\t" + esc(mode) + "\t" + esc(validOf(k)) + "\n");
        }
        out.flush();
        if (args.length > 0) out.close();
        System.err.println("wrote " + keys.size() + " keys");
    }
}
