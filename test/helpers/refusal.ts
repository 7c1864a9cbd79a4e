import { FleetError } from '../../protocol/index.ts';

/** The FleetError a promise rejects with; anything else (a success, another error) fails the test. */
export async function refusal(p: Promise<unknown>): Promise<FleetError> {
  const e: unknown = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  if (!(e instanceof FleetError)) throw new Error(`expected a FleetError, got ${String(e)}`);
  return e;
}
