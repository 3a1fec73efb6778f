package org.megrez.chat;

/**
 * The megrez C API (api/megrez.h) for Java, through libmegrez_jni. Plain Java (no Android
 * classes), so the bridge is also tested on a desktop JVM. Handles are longs; a model and its
 * sessions may be used from any thread (calls that run the model take turns); cancel() may be
 * called from any thread, e.g. a Stop button while chat() streams on a background thread.
 */
public final class MegrezNative {
  static {
    System.loadLibrary("megrez_jni");
  }

  private MegrezNative() {}

  /** Receives each piece of a reply as it is generated; return false to stop. */
  public interface TextListener {
    boolean onText(String piece);
  }

  /** Loads a model directory or .gguf; cacheDir keeps the compiled pipelines (may be null). */
  public static native long loadModel(String path, String cacheDir, int contextLength) throws MegrezException;

  public static native void freeModel(long model);

  public static native String deviceName(long model);

  public static native long createSession(long model) throws MegrezException;

  public static native void destroySession(long session);

  /** Adds a user turn and returns the whole reply, streaming it to listener (may be null). */
  public static native String chat(long session, String message, float temperature, int maxTokens,
                                   TextListener listener) throws MegrezException;

  public static native void cancel(long session);

  public static native void reset(long session) throws MegrezException;

  /** prefill t/s, decode t/s, TTFT ms, tokens, context used, context length, finish, device MB. */
  public static native double[] stats(long session) throws MegrezException;

  public static native String version();
}
