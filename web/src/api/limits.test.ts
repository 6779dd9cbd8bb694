import { messageError, titleError } from "./limits";

describe("client-side limits mirror the API's", () => {
  it("refuses empty, NUL and over-long messages, counting code points like Python", () => {
    expect(messageError("   ")).toMatch(/Type a message/);
    expect(messageError("a\u0000b")).toMatch(/NUL/);
    expect(messageError("x".repeat(10), 10)).toBeNull();
    expect(messageError("x".repeat(11), 10)).toMatch(/11 characters/);
    // 10 emoji are 20 UTF-16 units but 10 code points: allowed, as by the API.
    expect(messageError("😀".repeat(10), 10)).toBeNull();
  });

  it("refuses titles with control characters or over 200 characters", () => {
    expect(titleError("ok title")).toBeNull();
    expect(titleError("two\nlines")).toMatch(/one line/);
    expect(titleError("t".repeat(201))).toMatch(/limit is 200/);
  });
});
