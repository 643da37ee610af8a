// pgjdbc (Debian's libpostgresql-jdbc-java): keys read back with RETURNING, with
// getGeneratedKeys() for one row and for a batch, and N keys reserved in one round trip.
// A Java long holds every ID exactly; the pitfall is only where a long becomes a double or
// JSON for JavaScript (docs/clients.md).
// Run by tests/tests/clients.rs with SNOWFLAKE_JDBC_URL set; quoted in docs/clients.md.

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

public class SnowflakeJdbc {
    static final long EPOCH_UNIX_MS = 1735689600000L;

    /** {unix ms, node, sequence} of an ID, decoded with shifts. */
    static long[] decode(long id) {
        return new long[] {(id >>> 22) + EPOCH_UNIX_MS, (id >>> 12) & 0x3FF, id & 0xFFF};
    }

    public static void main(String[] args) throws SQLException {
        // prepareThreshold=0: no server-side prepared statements (PgBouncer in transaction mode).
        // reWriteBatchedInserts=true: a batch of INSERTs is sent as multi-row INSERTs.
        String url = System.getenv("SNOWFLAKE_JDBC_URL") + "?prepareThreshold=0&reWriteBatchedInserts=true";
        try (Connection conn = DriverManager.getConnection(url, "postgres", null)) {
            try (Statement st = conn.createStatement()) {
                st.execute("CREATE TABLE audit_jdbc (id bigint PRIMARY KEY DEFAULT snowflake_nextval(),"
                        + " ref text NOT NULL UNIQUE, note text)");
            }
            Map<String, Long> rows = new LinkedHashMap<>();

            // RETURNING, read with executeQuery().
            try (PreparedStatement ps = conn.prepareStatement(
                    "INSERT INTO audit_jdbc (ref, note) VALUES (?, ?) RETURNING id")) {
                ps.setString(1, "jdbc-0");
                ps.setString(2, "returning");
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    rows.put("jdbc-0", rs.getLong(1));
                }
            }

            // getGeneratedKeys(), one row: name the key column (the driver appends RETURNING "id").
            try (PreparedStatement ps = conn.prepareStatement(
                    "INSERT INTO audit_jdbc (ref, note) VALUES (?, ?)", new String[] {"id"})) {
                ps.setString(1, "jdbc-1");
                ps.setString(2, "generated keys");
                ps.executeUpdate();
                try (ResultSet keys = ps.getGeneratedKeys()) {
                    keys.next();
                    rows.put("jdbc-1", keys.getLong("id"));
                }
            }

            // A batch with getGeneratedKeys(): pgjdbc sends the INSERTs ... RETURNING pipelined
            // (not one round trip each) but one statement per row: reWriteBatchedInserts does not
            // rewrite a batch that returns keys. Ask for the ref too and match by it.
            try (PreparedStatement ps = conn.prepareStatement(
                    "INSERT INTO audit_jdbc (ref, note) VALUES (?, ?)", new String[] {"id", "ref"})) {
                for (int i = 2; i < 502; i++) {
                    ps.setString(1, "jdbc-" + i);
                    ps.setString(2, "batch");
                    ps.addBatch();
                }
                ps.executeBatch();
                try (ResultSet keys = ps.getGeneratedKeys()) {
                    while (keys.next()) rows.put(keys.getString("ref"), keys.getLong("id"));
                }
            }

            // Many rows in one statement, one round trip: an array parameter, (ref, id) pairs back.
            String[] refs = new String[500];
            for (int i = 0; i < refs.length; i++) refs[i] = "jdbc-array-" + i;
            try (PreparedStatement ps = conn.prepareStatement(
                    "INSERT INTO audit_jdbc (ref, note) SELECT r, 'array' FROM unnest(?::text[]) AS r RETURNING ref, id")) {
                ps.setArray(1, conn.createArrayOf("text", refs));
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) rows.put(rs.getString("ref"), rs.getLong("id"));
                }
            }

            // A bulk loader reserving N keys in one round trip, then a batch without keys, which
            // reWriteBatchedInserts sends as multi-row INSERTs.
            List<Long> reserved = new ArrayList<>();
            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT snowflake_nextval() FROM generate_series(1, ?)")) {
                ps.setInt(1, 1000);
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) reserved.add(rs.getLong(1));
                }
            }
            for (int i = 1; i < reserved.size(); i++)
                if (reserved.get(i) <= reserved.get(i - 1)) fail("reserved IDs are not increasing");
            if (reserved.size() != 1000) fail("reserved " + reserved.size() + " IDs, not 1000");
            try (PreparedStatement ps = conn.prepareStatement(
                    "INSERT INTO audit_jdbc (id, ref, note) VALUES (?, ?, 'reserved')")) {
                for (int i = 0; i < reserved.size(); i++) {
                    ps.setLong(1, reserved.get(i));
                    ps.setString(2, "jdbc-reserved-" + i);
                    ps.addBatch();
                    rows.put("jdbc-reserved-" + i, reserved.get(i));
                }
                ps.executeBatch();
            }

            checkAgainstServer(conn, rows);
            for (Map.Entry<String, Long> e : rows.entrySet()) {
                long[] d = decode(e.getValue());
                System.out.println("row audit_jdbc " + e.getKey() + " " + e.getValue() + " " + d[0] + " " + d[1] + " " + d[2]);
            }
        }
    }

    /** The client's IDs and decoding agree with what the server stored and snowflake_parse(). */
    static void checkAgainstServer(Connection conn, Map<String, Long> rows) throws SQLException {
        int n = 0;
        try (Statement st = conn.createStatement();
                ResultSet rs = st.executeQuery(
                        "SELECT t.ref, t.id::text, (extract(epoch FROM p.ts) * 1000)::bigint, p.node, p.sequence"
                                + " FROM audit_jdbc t, snowflake_parse(t.id) p")) {
            while (rs.next()) {
                n++;
                String ref = rs.getString(1);
                Long id = rows.get(ref);
                if (id == null) fail(ref + " stored, not seen by the client");
                if (!Long.toString(id).equals(rs.getString(2))) fail(ref + ": client has " + id + ", server stored " + rs.getString(2));
                if (id <= (1L << 53)) fail(ref + ": " + id + " is not above 2^53");
                long[] d = decode(id);
                if (d[0] != rs.getLong(3) || d[1] != rs.getInt(4) || d[2] != rs.getInt(5))
                    fail(ref + ": decoded " + d[0] + " " + d[1] + " " + d[2] + ", snowflake_parse " + rs.getLong(3) + " " + rs.getInt(4) + " " + rs.getInt(5));
            }
        }
        if (n != rows.size()) fail("server holds " + n + " rows, the client " + rows.size());
    }

    static void fail(String message) {
        System.err.println("audit_jdbc: " + message);
        System.exit(1);
    }
}
