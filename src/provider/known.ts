import * as pulumi from "@pulumi/pulumi";

/**
 * The plain value of an input the component needs at construct time (the spec is validated and
 * resolved before anything is registered). An unknown value, e.g. the output of a resource a
 * preview has not created yet, is refused naming the property.
 */
export async function known<T>(property: string, value: unknown): Promise<T | undefined> {
  if (value === undefined) return undefined;
  // pulumi.output lifts nested outputs too; its settled value and knownness are what we need.
  const lifted = pulumi.output(value) as unknown as { isKnown: Promise<boolean>; promise(): Promise<T> };
  if (!(await lifted.isKnown)) {
    throw new pulumi.InputPropertyError({ propertyPath: property, reason: "must be known when the component is built: give a value, not the output of a resource that does not exist yet" });
  }
  return lifted.promise();
}

