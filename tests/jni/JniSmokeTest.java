import java.util.concurrent.atomic.AtomicInteger;
import org.megrez.chat.MegrezException;
import org.megrez.chat.MegrezNative;

/**
 * The JNI bridge of the Android app (apps/android/.../megrez_jni.cpp) on a desktop JVM:
 *   java -Djava.library.path=LIB -cp CLASSES JniSmokeTest MODEL_DIR EXPECTED_REPLY_FILE CACHE_DIR
 * The reply to the first question must equal megrez-run --chat's (the runner writes it).
 */
public final class JniSmokeTest {
  private static int failures = 0;

  private static void check(boolean ok, String what) {
    if (!ok) {
      System.err.println("CHECK failed: " + what);
      ++failures;
    }
  }

  public static void main(String[] args) throws Exception {
    final String model = args[0];
    final String expected = new String(java.nio.file.Files.readAllBytes(java.nio.file.Paths.get(args[1])),
                                       java.nio.charset.StandardCharsets.UTF_8);
    check(!MegrezNative.version().isEmpty(), "version");

    try {
      MegrezNative.loadModel("/no/such/model", null, 0);
      check(false, "a bad path throws");
    } catch (MegrezException e) {
      check(e.getMessage().startsWith("MEGREZ_ERROR_MODEL: "), "bad path message: " + e.getMessage());
      check(e.getMessage().contains("/no/such/model"), "message names the path");
    }

    final long handle = MegrezNative.loadModel(model, args[2], 256);
    check(!MegrezNative.deviceName(handle).isEmpty(), "device name");
    final long session = MegrezNative.createSession(handle);

    // 1. The reply streams piece by piece and equals megrez-run's.
    final StringBuilder streamed = new StringBuilder();
    String reply = MegrezNative.chat(session, "Who was the father of Solomon?", 0f, 20, piece -> {
      streamed.append(piece);
      return true;
    });
    check(reply.equals(streamed.toString()), "streamed pieces make the reply");
    check((reply + "\n").equals(expected), "reply [" + reply + "] equals megrez-run's [" + expected + "]");
    double[] stats = MegrezNative.stats(session);
    check(stats.length == 8 && stats[3] >= 1 && stats[4] > 0 && stats[5] == 256, "stats");

    // 2. The listener stops it.
    MegrezNative.reset(session);
    final AtomicInteger pieces = new AtomicInteger();
    MegrezNative.chat(session, "Who is God?", 0f, 40, piece -> pieces.incrementAndGet() < 2);
    check(pieces.get() == 2, "stopped after 2 pieces, got " + pieces.get());
    check(MegrezNative.stats(session)[6] == 3, "finish reason cancelled");

    // 3. Stop from another thread while it streams (a Stop button).
    final AtomicInteger seen = new AtomicInteger();
    Thread stopper = new Thread(() -> {
      while (seen.get() < 1) Thread.onSpinWait();
      MegrezNative.cancel(session);
    });
    stopper.start();
    MegrezNative.chat(session, "Tell me of Moses and Aaron and the children of Israel.", 1f, 200,
                      piece -> { seen.incrementAndGet(); return true; });
    stopper.join();
    check(MegrezNative.stats(session)[6] == 3, "cancelled from another thread");

    // 4. Text outside the BMP and CJK cross both ways; an exception in the listener propagates.
    String odd = MegrezNative.chat(session, "\uD83D\uDE42 \u4F60\u597D \uD83D", 0f, 8, null);
    check(odd != null, "odd text");
    try {
      MegrezNative.chat(session, "Who is God?", 0f, 8, piece -> { throw new IllegalStateException("from listener"); });
      check(false, "a listener exception propagates");
    } catch (IllegalStateException e) {
      check(e.getMessage().equals("from listener"), "listener exception");
    }

    MegrezNative.destroySession(session);
    MegrezNative.freeModel(handle);
    if (failures > 0) {
      System.err.println("JniSmokeTest: " + failures + " check(s) failed");
      System.exit(1);
    }
    System.out.println("JniSmokeTest: all checks passed");
  }
}
